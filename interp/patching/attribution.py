"""Attribution patching: a first-order estimate of every patch from one backward pass per batch.

A causal patch replaces the receiver's activation ``a`` at a site with the source's ``a'`` on the
same input and reads the score ``r``. Its linear (first-order Taylor) estimate is

    r(patched) - r(clean)  ~=  sum over patched positions p of  dr/da[p] . (a'[p] - a[p])

(Nanda 2023, "attribution patching"; Syed et al. 2023). One clean forward pass of the source
(no gradients), one forward pass of the receiver with gradients at every needed site and one
backward pass give the estimate of every patch of a sweep at once: every site, layer and position.
The estimate is exact when the score is linear in the activation downstream of the site (e.g. a
patch of the last block's output read by a linear head without a norm), and only approximate
otherwise; it is a screen that says where to look, never the reported result.

Items are the sweep's own ``Items`` (each group is one prompt's prefix plus equal-length
suffixes, so full sequences need no padding); the readout is the RM's ``norm`` then ``head`` at
the last position, in the RM's reward units. Estimates are float32 ``[n_patches, N]`` in the
order of ``items.table``; NaN where a patch's position does not exist in an item.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from interp.budget import rows_per_pass
from interp.models.loading import LoadedModel
from interp.models.readout import RewardReadout
from interp.patching.items import Items
from interp.patching.specs import PatchSpec, SiteKey, positions_masks
from interp.progress import NoProgress, Progress
from interp.sites.edit import edit_sites, site_hooks
from interp.sites.names import Site
from interp.spans import forward_span

GRAD_ROWS_DIVISOR = 4
"""A backward pass keeps every block's activations: a quarter of the forward budget's rows."""


@dataclass(frozen=True)
class AttributionResult:
    """``estimate`` ``[n_patches, N]``: the linear estimate of patched - clean score per item
    (float32, reward units); ``clean`` ``[N]``: the receiver's score from the same passes."""

    patches: tuple[PatchSpec, ...]
    estimate: np.ndarray
    clean: np.ndarray
    seconds: float


@contextlib.contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """Parameters need no gradients while only activation gradients are wanted."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _with_gradients(
    model: LoadedModel, ids: torch.Tensor, keys: Sequence[SiteKey], readout: RewardReadout
) -> tuple[torch.Tensor, dict[SiteKey, torch.Tensor], dict[SiteKey, torch.Tensor]]:
    """Scores ``[B]``, activations and d(sum of scores)/d(activation) at every site in ``keys``."""
    kept: dict[SiteKey, torch.Tensor] = {}

    def keeper(key: SiteKey):
        def keep(current: torch.Tensor) -> torch.Tensor:
            if not current.requires_grad:  # the first site seen: the graph starts here
                current = current.detach().requires_grad_(True)
            kept[key] = current
            return current

        return keep

    edits = {Site(layer, site): keeper((site, layer)) for site, layer in keys}
    with torch.enable_grad(), _frozen(model.model), edit_sites(model, edits):
        final = forward_span(model.backbone, 0, model.n_layers, input_ids=ids)
        scores = readout.head(readout.norm(final[:, -1]))[..., 0].float()
        order = list(keys)
        grads = torch.autograd.grad(scores.sum(), [kept[k] for k in order], allow_unused=True)
    values = {k: kept[k].detach() for k in order}
    gradients = {
        k: (g if g is not None else torch.zeros_like(values[k])) for k, g in zip(order, grads)
    }
    return scores.detach(), values, gradients


def attribution_estimates(
    receiver: LoadedModel,
    source: LoadedModel,
    readout: RewardReadout,
    items: Items,
    patches: Sequence[PatchSpec],
    progress: Progress | None = None,
) -> AttributionResult:
    """The linear estimate of every patch on every item (see the module docstring)."""
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    device = receiver.device
    keys = sorted({p.key for p in patches}, key=lambda k: (k[1], k[0]))
    n = len(items.table)
    estimate = np.full((len(patches), n), np.nan, dtype=np.float32)
    clean = np.full(n, np.nan, dtype=np.float32)
    progress.start(len(items.groups), "attribution screen (one backward pass per batch)")
    for group in items.groups:
        length = group.prefix_len + group.suffix_len
        prefix = torch.tensor([list(group.prefix)], dtype=torch.long).expand(group.n, -1)
        ids_all = torch.cat([prefix, group.suffixes], dim=1)
        masks = [positions_masks(p, group.prefix_len, group.suffix_len) for p in patches]
        rows = max(1, rows_per_pass(device, length) // GRAD_ROWS_DIVISOR)
        for start in range(0, group.n, rows):
            ids = ids_all[start : start + rows].to(device)
            capture: dict[SiteKey, list[torch.Tensor]] = {k: [] for k in keys}
            with torch.no_grad(), site_hooks(source, capture=capture):
                forward_span(source.backbone, 0, source.n_layers, input_ids=ids)
            scores, values, grads = _with_gradients(receiver, ids, keys, readout)
            index = list(group.item_index[start : start + rows])
            clean[index] = scores.cpu().numpy()
            for i, (spec, mask) in enumerate(zip(patches, masks)):
                if mask is None:
                    continue
                where = torch.cat(mask).to(device)  # [P + S]
                diff = capture[spec.key][0].to(values[spec.key].dtype) - values[spec.key]
                per_position = (grads[spec.key] * diff).sum(-1).float()  # [B, P + S]
                estimate[i, index] = (per_position * where).sum(-1).cpu().numpy()
        progress.advance()
    progress.close()
    return AttributionResult(tuple(patches), estimate, clean, time.perf_counter() - t0)
