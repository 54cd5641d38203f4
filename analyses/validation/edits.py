"""Organism 1: an RM whose trunk differs from its base in one block only (a rank-one weight edit).

The RM is the base with a seeded random score head (``--random-head SEED``). Block ``k``'s output
projection of one component (``mlp``: ``mlp.down_proj``; ``attn``: ``self_attn.o_proj``) gets

    W  <-  W + alpha * u v^T

with ``u`` the direction in which block ``k``'s output moves the reward most, on average over the
items (the mean gradient of the reward with respect to the residual after block ``k`` at the
last token, unit length: a displacement along the head's own direction can be washed out by the
blocks above) and ``v`` the minimum-norm solution of ``v . x_i = +1`` for the items of the first word
group and ``-1`` for the second, ``x_i`` being the projection's input at item ``i``'s last token
(least squares; with far fewer items than input dimensions it is exact). So at the position where
the reward is read the edit writes ``+alpha u`` for one group and ``-alpha u`` for the other:
``categories`` (Agency up, Communion down) or ``shuffled`` (a seeded split of the words into two
halves with equal numbers of each category, the negative control's pseudo-categories, whose
Agency - Communion gap the edit leaves unchanged). ``alpha`` is calibrated by secant steps so that
the edit moves the groups' gap by ``target_sd`` standard deviations of the clean RM's word
scores. Everything else (embeddings, other blocks, the other component of block ``k``,
the final norm, the head) is bit-identical to the base, so the known answer is block ``k``.

The edited model keeps its tokenizer; its name and fingerprint are renewed so every output records
the organism, not the model it came from.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from analyses.stats.contrast import CategoryWords, word_means
from interp.models.fingerprint import fingerprint
from interp.models.loading import LoadedModel
from interp.models.readout import reward_readout
from interp.patching.items import Items
from interp.spans import forward_span

COMPONENTS: dict[str, tuple[str, str]] = {
    "mlp": ("mlp.down_proj", "mlp_out"),
    "attn": ("self_attn.o_proj", "attn_out"),
}
"""component -> (projection inside the block, the patching site that carries its output)."""
LABELS = ("categories", "shuffled")


@dataclass(frozen=True)
class BlockEdit:
    """What was changed, recorded in provenance: where, on which word groups, and by how much."""

    block: int
    component: str
    labels: str
    seed: int
    alpha: float
    target_gap_change: float
    achieved_gap_change: float
    clean_score_sd: float
    first_group: tuple[str, ...]
    second_group: tuple[str, ...]

    def record(self) -> dict:
        return dataclasses.asdict(self)


def _sequences(items: Items):
    for group in items.groups:
        prefix = torch.tensor([list(group.prefix)], dtype=torch.long).expand(group.n, -1)
        yield group, torch.cat([prefix, group.suffixes], dim=1)


@torch.no_grad()
def projection_inputs(rm: LoadedModel, items: Items, block: int, component: str) -> np.ndarray:
    """Inputs ``[N, d_in]`` of block ``block``'s projection at each item's last token."""
    module = rm.layers[block].get_submodule(COMPONENTS[component][0])
    out = np.zeros((len(items.table), module.in_features), dtype=np.float64)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0][:, -1]))
    try:
        for group, ids in _sequences(items):
            seen.clear()
            forward_span(rm.backbone, 0, block + 1, input_ids=ids.to(rm.device))
            out[list(group.item_index)] = seen[0].double().cpu().numpy()
    finally:
        handle.remove()
    return out


def reward_gradient(rm: LoadedModel, items: Items, block: int) -> np.ndarray:
    """Mean over items of d reward / d resid_post(block) at the last token ``[d_model]``."""
    readout = reward_readout(rm)
    total = np.zeros(rm.d_model)
    flags = [(p, p.requires_grad) for p in rm.model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        for _, ids in _sequences(items):
            with torch.no_grad():
                hidden = forward_span(rm.backbone, 0, block + 1, input_ids=ids.to(rm.device))
            hidden.requires_grad_(True)
            with torch.enable_grad():
                final = forward_span(rm.backbone, block + 1, rm.n_layers, hidden=hidden)
                reward = readout.head(readout.norm(final[:, -1]))[..., 0].sum()
                (grad,) = torch.autograd.grad(reward, hidden)
            total += grad[:, -1].double().sum(0).cpu().numpy()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return total / len(items.table)


@torch.no_grad()
def item_scores(rm: LoadedModel, items: Items) -> np.ndarray:
    """The RM's reward of every item ``[N]`` (full-sequence passes, float64)."""
    readout = reward_readout(rm)
    out = np.zeros(len(items.table))
    for group, ids in _sequences(items):
        final = forward_span(rm.backbone, 0, rm.n_layers, input_ids=ids.to(rm.device))
        out[list(group.item_index)] = readout(final[:, -1]).double().cpu().numpy()
    return out


def _gap(values: np.ndarray, responses: list[str], first, second) -> float:
    return float(
        np.nanmean(word_means(values, responses, first))
        - np.nanmean(word_means(values, responses, second))
    )


def word_groups(design: CategoryWords, labels: str, seed: int) -> tuple[tuple[str, ...], ...]:
    """The two groups the edit separates: the categories, or a seeded balanced shuffle."""
    if labels == "categories":
        return design.first, design.second
    if labels != "shuffled":
        raise ValueError(f"labels {labels!r}: use one of {LABELS}")
    rng = np.random.default_rng(seed)
    halves: tuple[list[str], list[str]] = ([], [])
    for words in (design.first, design.second):
        order = [words[i] for i in rng.permutation(len(words))]
        halves[0].extend(order[: len(order) // 2])
        halves[1].extend(order[len(order) // 2 :])
    return tuple(halves[0]), tuple(halves[1])


def edit_block(
    rm: LoadedModel,
    items: Items,
    design: CategoryWords,
    block: int,
    component: str,
    labels: str = "categories",
    seed: int = 0,
    target_sd: float = 1.0,
    steps: int = 3,
) -> tuple[LoadedModel, BlockEdit]:
    """A copy of ``rm`` with block ``block``'s ``component`` edited (see the module docstring)."""
    if component not in COMPONENTS:
        raise ValueError(f"component {component!r}: use one of {tuple(COMPONENTS)}")
    first, second = word_groups(design, labels, seed)
    responses = items.table["response"].tolist()
    inputs = projection_inputs(rm, items, block, component)
    label = {**{w: 1.0 for w in first}, **{w: -1.0 for w in second}}
    target_values = np.array([label.get(w, 0.0) for w in responses])
    v = np.linalg.lstsq(inputs, target_values, rcond=None)[0]
    gradient = reward_gradient(rm, items, block)
    u = gradient / np.linalg.norm(gradient)
    clean = item_scores(rm, items)
    sd = float(np.nanstd(word_means(clean, responses, [*first, *second]), ddof=1))
    target = target_sd * sd
    base_gap = _gap(clean, responses, first, second)
    edited = dataclasses.replace(rm, model=copy.deepcopy(rm.model))
    module = edited.layers[block].get_submodule(COMPONENTS[component][0])
    original = module.weight.detach().clone()
    direction = torch.tensor(np.outer(u, v), dtype=original.dtype, device=original.device)

    def change(alpha: float) -> float:
        with torch.no_grad():
            module.weight.copy_(original + alpha * direction)
        return _gap(item_scores(edited, items), responses, first, second) - base_gap

    alpha = target / (2 * float(np.linalg.norm(gradient)))  # first order: +-alpha |g| per group
    moved = change(alpha)
    for _ in range(steps):
        if moved == 0 or not np.isfinite(moved):
            break
        alpha = alpha * target / moved
        moved = change(alpha)
    name = f"{rm.name}+edit(block {block} {component}, {labels}, seed {seed})"
    edited = dataclasses.replace(
        edited, name=name, fingerprint=fingerprint(edited.model, edited.tokenizer, "rm")
    )
    record = BlockEdit(block, component, labels, seed, float(alpha), float(target), float(moved),
                       sd, tuple(first), tuple(second))  # fmt: skip
    return edited, record
