"""Activation sites: canonical names, parsing, and reading/writing them on Llama- and Gemma-style models.

Canonical names follow TransformerLens: ``blocks.{l}.hook_resid_pre``, ``blocks.{l}.hook_attn_out``,
``blocks.{l}.hook_mlp_out``, ``blocks.{l}.hook_resid_post``. Every site is a ``[batch, seq, d_model]``
tensor in the residual-stream basis:

- ``resid_pre(l)``: the input of decoder block ``l`` (for ``l = 0``: the (scaled) token embeddings).
- ``attn_out(l)``: what the attention sub-block adds to the residual stream. Llama-style blocks:
  the attention module's output (after ``o_proj``). Gemma2/3-style "sandwich" blocks: the output of
  ``post_attention_layernorm`` (the norm applied to the attention output before the residual add).
- ``mlp_out(l)``: what the MLP sub-block adds. Llama-style: the MLP's output. Gemma-style: the
  output of ``post_feedforward_layernorm``.
- ``resid_post(l)``: the output of block ``l`` (before the final norm for the last block).

So ``resid_post(l) == resid_pre(l + 1)`` and ``resid_post(l) == resid_pre(l) + attn_out(l) +
mlp_out(l)`` exactly; ``check_sites`` verifies this on a model (an nnterp-style self-check).

Beware of the names: in Llama ``post_attention_layernorm`` is the *pre-MLP* norm, in Gemma3 it is
the norm of the attention output. ``hook_points`` resolves each site to a module and a side.

Reading (``SiteReader``) has three backends that return the same tensors:

- ``nnsight`` (default): nnsight 0.8 ``TransformersModel`` over the loaded module (task
  ``text-classification`` for RMs, ``text-generation`` for LMs), fed pre-tokenised right-padded ids
  and masks, so nnsight never pads or re-tokenises anything.
- ``torch``: plain PyTorch forward hooks on the same modules (fastest, no dependencies).
- ``tl``: the TransformerLens 4 bridge (``TransformerBridge.boot_transformers``), causal LMs only.
  The bridge rewrites the module tree and switches attention to eager, so it runs on a deep copy of
  the model (twice the weights in memory) and leaves ``loaded`` untouched.

All readers stop the forward pass right after the last requested site (later blocks, the final
norm and the head never run) and apply an optional ``select(site, tensor)`` inside the hook, so only
the selected slice (for example the last token's vector) is ever kept.

Writing (``edit_sites``) uses plain PyTorch hooks on the same modules: a context manager that
replaces (or transforms) the site tensors in every forward pass run inside it. Read with the
``torch`` backend inside ``edit_sites``: nnsight captures a module's output *before* PyTorch
forward hooks run, so it would report pre-edit values (it refuses to, with a clear error).
Downstream effects of an edit are seen by every backend.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from interp.batching import TokenBatch, right_pad
from interp.errors import UserError
from interp.loading import LoadedModel

SITE_KINDS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out", "resid_post")
"""Site kinds in the order a block computes them."""

BACKENDS: tuple[str, ...] = ("nnsight", "torch", "tl")

Backend = Literal["nnsight", "torch", "tl"]
Select = Callable[["Site", torch.Tensor], torch.Tensor]
Edit = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]

_NAME = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|attn_out|mlp_out|resid_post)$")


@dataclass(frozen=True)
class Site:
    """One activation site: ``kind`` (one of ``SITE_KINDS``) at decoder block ``layer``."""

    layer: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"unknown site kind {self.kind!r} (use {', '.join(SITE_KINDS)})")

    @property
    def name(self) -> str:
        """The canonical TransformerLens-style name, e.g. ``blocks.3.hook_resid_post``."""
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def order(self) -> tuple[int, int]:
        """Execution order: by layer, then resid_pre < attn_out < mlp_out < resid_post."""
        return (self.layer, SITE_KINDS.index(self.kind))

    @classmethod
    def parse(cls, name: str) -> Site:
        match = _NAME.match(name.strip())
        if not match:
            raise UserError(
                f"bad site name {name!r}: expected blocks.<layer>.hook_<kind> with kind one of "
                f"{', '.join(SITE_KINDS)}"
            )
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return self.name


def parse_site_kinds(text: str) -> tuple[str, ...]:
    """``"resid_post,attn_out"`` (``hook_`` prefix optional) -> kinds in execution order."""
    kinds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind = part.removeprefix("hook_")
        if kind not in SITE_KINDS:
            raise UserError(f"--sites: unknown site {part!r} (use {', '.join(SITE_KINDS)})")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise UserError("--sites: no sites given")
    return tuple(sorted(kinds, key=SITE_KINDS.index))


def parse_layers(text: str, n_layers: int) -> tuple[int, ...]:
    """``all`` | ``0,5,10`` | ``0:30:2`` (Python slice: stop exclusive) | negatives | mixtures.

    Returns sorted unique layer indices in ``[0, n_layers)``.
    """
    text = text.strip().lower()
    if text in ("all", ""):
        return tuple(range(n_layers))
    layers: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                pieces = [int(x) if x.strip() else None for x in part.split(":")]
                if len(pieces) > 3:
                    raise ValueError
                chosen = range(n_layers)[slice(*pieces)]
                if len(chosen) == 0:
                    raise UserError(f"--layers {part!r} selects no layer of {n_layers}")
                layers.update(chosen)
            else:
                index = int(part)
                if not -n_layers <= index < n_layers:
                    raise UserError(
                        f"--layers {part}: the model has {n_layers} layers (0..{n_layers - 1})"
                    )
                layers.add(index % n_layers)
        except ValueError:
            raise UserError(
                f"--layers {part!r}: expected all, a list like 0,5,10 or a range like 0:30:2"
            ) from None
    if not layers:
        raise UserError("--layers: no layers given")
    return tuple(sorted(layers))


def make_sites(kinds: Sequence[str], layers: Sequence[int]) -> tuple[Site, ...]:
    """Every (kind, layer) combination, in execution order."""
    return tuple(sorted((Site(layer, kind) for layer in layers for kind in kinds), key=_order))


def parse_sites(sites_text: str, layers_text: str, n_layers: int) -> tuple[Site, ...]:
    """Sites from ``--sites`` (kinds, or canonical names) and ``--layers``, in execution order."""
    names = [p.strip() for p in sites_text.split(",") if p.strip().startswith("blocks.")]
    kinds_text = ",".join(p for p in sites_text.split(",") if not p.strip().startswith("blocks."))
    sites = set()
    if kinds_text.strip():
        sites.update(make_sites(parse_site_kinds(kinds_text), parse_layers(layers_text, n_layers)))
    for name in names:
        site = Site.parse(name)
        if site.layer >= n_layers:
            raise UserError(f"site {name}: the model has {n_layers} layers")
        sites.add(site)
    if not sites:
        raise UserError("--sites: no sites given")
    return tuple(sorted(sites, key=_order))


def _order(site: Site) -> tuple[int, int]:
    return site.order


# ---------------------------------------------------------------- where each site lives


@dataclass(frozen=True)
class HookPoint:
    """A site's tensor: ``side`` (``input`` or ``output``) of the module at ``path``.

    ``path`` is relative to the model root (``loaded.model``); ``index`` picks an element of a
    tuple output (the attention module returns ``(output, weights)``).
    """

    path: str
    side: Literal["input", "output"]
    index: int | None = None


def block_style(loaded: LoadedModel) -> Literal["llama", "sandwich"]:
    """``sandwich`` for Gemma2/3-style blocks (norms after attention and MLP), else ``llama``."""
    block = loaded.layers[0]
    if hasattr(block, "post_feedforward_layernorm") and hasattr(block, "pre_feedforward_layernorm"):
        return "sandwich"
    if hasattr(block, "self_attn") and hasattr(block, "mlp"):
        return "llama"
    raise UserError(
        f"{loaded.name}: unsupported decoder block {type(block).__name__} (sites know Llama-style "
        "blocks with self_attn/mlp and Gemma-style blocks with post-attention/feed-forward norms)"
    )


def _layer_paths(loaded: LoadedModel) -> list[str]:
    names = {id(module): name for name, module in loaded.model.named_modules()}
    return [names[id(block)] for block in loaded.layers]


def hook_points(loaded: LoadedModel, sites: Sequence[Site]) -> dict[Site, HookPoint]:
    """Where each site's tensor is read or written on this model."""
    style = block_style(loaded)
    paths = _layer_paths(loaded)
    out = {}
    for site in sites:
        if not 0 <= site.layer < loaded.n_layers:
            raise UserError(f"site {site}: {loaded.name} has {loaded.n_layers} layers")
        block = paths[site.layer]
        if site.kind == "resid_pre":
            out[site] = HookPoint(block, "input")
        elif site.kind == "resid_post":
            out[site] = HookPoint(block, "output")
        elif site.kind == "attn_out":
            out[site] = (
                HookPoint(f"{block}.post_attention_layernorm", "output")
                if style == "sandwich"
                else HookPoint(f"{block}.self_attn", "output", 0)
            )
        else:
            out[site] = (
                HookPoint(f"{block}.post_feedforward_layernorm", "output")
                if style == "sandwich"
                else HookPoint(f"{block}.mlp", "output")
            )
    return out


def _module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


# ---------------------------------------------------------------- reading


class _Stop(Exception):
    """Raised by the last read hook to end the forward pass early."""


def _identity(site: Site, tensor: torch.Tensor) -> torch.Tensor:
    return tensor


class SiteReader:
    """Reads site tensors for right-padded token batches with one backend.

    ``read(batch, sites, select)`` runs one forward pass (stopping after the last site) and
    returns ``{site: select(site, tensor)}`` where ``tensor`` is ``[B, T, d_model]`` in the model's
    dtype on its device; ``select`` defaults to the identity. Values are detached.
    """

    def __init__(self, loaded: LoadedModel, backend: Backend = "nnsight") -> None:
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
        self.loaded = loaded
        self.backend = backend
        self._nnsight = None
        self._bridge = None
        if backend == "nnsight":
            self._nnsight = _nnsight_model(loaded)
        elif backend == "tl":
            self._bridge = _tl_bridge(loaded)

    def read(
        self, batch: TokenBatch, sites: Sequence[Site], select: Select | None = None
    ) -> dict[Site, torch.Tensor]:
        if not sites:
            return {}
        select = select or _identity
        ordered = sorted(set(sites), key=_order)
        batch = batch.to(self.loaded.device)
        with torch.no_grad():
            if self.backend == "nnsight":
                return _read_nnsight(self._nnsight, self.loaded, batch, ordered, select)
            if self.backend == "tl":
                return _read_tl(self._bridge, batch, ordered, select)
            return _read_torch(self.loaded, batch, ordered, select)


def read_sites(
    loaded: LoadedModel,
    batch: TokenBatch,
    sites: Sequence[Site],
    backend: Backend = "torch",
    select: Select | None = None,
) -> dict[Site, torch.Tensor]:
    """One-off read (builds a ``SiteReader``; reuse a reader for many batches). The default
    backend here is ``torch``: nothing to wrap, and it sees ``edit_sites`` edits."""
    return SiteReader(loaded, backend).read(batch, sites, select)


def _read_torch(
    loaded: LoadedModel, batch: TokenBatch, sites: list[Site], select: Select
) -> dict[Site, torch.Tensor]:
    points = hook_points(loaded, sites)
    found: dict[Site, torch.Tensor] = {}
    last = sites[-1]
    handles = []

    def reader(site: Site, point: HookPoint):
        def take(value: torch.Tensor) -> None:
            found[site] = select(site, value.detach())
            if site == last:
                raise _Stop

        if point.side == "input":

            def pre_hook(module, args, kwargs):
                take(args[0] if args else kwargs["hidden_states"])

            return pre_hook

        def hook(module, args, output):
            take(output[point.index] if point.index is not None else output)

        return hook

    try:
        for site, point in points.items():
            module = _module(loaded.model, point.path)
            fn = reader(site, point)
            if point.side == "input":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(fn))
        try:
            loaded.backbone(**batch.model_inputs(), use_cache=False)
        except _Stop:
            pass
    finally:
        for handle in handles:
            handle.remove()
    return {site: found[site] for site in sites}


def _nnsight_model(loaded: LoadedModel):
    from nnsight import TransformersModel

    task = "text-classification" if loaded.kind == "rm" else "text-generation"
    return TransformersModel(loaded.model, tokenizer=loaded.tokenizer, task=task)


def _envoy(root, path: str):
    node = root
    for part in path.split(".") if path else ():
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def _read_nnsight(
    wrapped, loaded: LoadedModel, batch: TokenBatch, sites: list[Site], select: Select
) -> dict[Site, torch.Tensor]:
    # The trace body runs interleaved with the forward pass, so values must be requested in
    # execution order (``sites`` is sorted); the tracer stops after the last one.
    points = hook_points(loaded, sites)
    for site, point in points.items():
        hooks = _module(loaded.model, point.path)._forward_hooks.values()
        if point.side == "output" and any(getattr(h, "_valuebias_edit", False) for h in hooks):
            raise ValueError(
                f"{site} is being edited (edit_sites); nnsight reads module outputs before "
                "PyTorch forward hooks run, so it would miss the edit; read with "
                "backend='torch' inside edit_sites"
            )
    inputs = batch.model_inputs()
    with wrapped.trace(inputs, use_cache=False) as tracer:
        found = {}.save()
        for site in sites:
            point = points[site]
            envoy = _envoy(wrapped, point.path)
            if point.side == "input":
                value = envoy.input
            elif point.index is not None:
                value = envoy.output[point.index]
            else:
                value = envoy.output
            found[site] = select(site, value.detach())
        tracer.stop()
    return {site: found[site] for site in sites}


def _tl_bridge(loaded: LoadedModel):
    if loaded.kind != "lm":
        raise UserError(
            "--backend tl works for causal LMs only (the TransformerLens bridge has no reward "
            "head); use --backend nnsight for reward models"
        )
    from transformer_lens.model_bridge import TransformerBridge

    try:
        return TransformerBridge.boot_transformers(
            loaded.source,
            hf_model=copy.deepcopy(loaded.model),
            tokenizer=loaded.tokenizer,
            device=loaded.device,
            dtype=loaded.dtype,
        )
    except Exception as err:  # the bridge raises many kinds; the user needs one line
        raise UserError(f"TransformerLens bridge cannot wrap {loaded.name}: {err}") from None


def _read_tl(bridge, batch: TokenBatch, sites: list[Site], select: Select):
    found: dict[Site, torch.Tensor] = {}
    last = sites[-1]

    def hook_for(site: Site):
        def hook(value, hook):
            found[site] = select(site, value.detach())
            if site == last:
                raise _Stop
            return value

        return hook

    hooks = [(site.name, hook_for(site)) for site in sites]
    try:
        bridge.run_with_hooks(
            batch.input_ids, attention_mask=batch.attention_mask, return_type=None, fwd_hooks=hooks
        )
    except _Stop:
        pass
    return {site: found[site] for site in sites}


# ---------------------------------------------------------------- writing


@contextmanager
def edit_sites(loaded: LoadedModel, edits: Mapping[Site, Edit]) -> Iterator[None]:
    """Replace or transform site tensors in every forward pass run inside the context.

    ``edits[site]`` is a tensor broadcastable to the site's ``[B, T, d_model]`` (it replaces the
    activation, cast to the model's dtype and device) or a function ``tensor -> tensor``. Writing a
    site changes everything computed after it: e.g. replacing ``resid_pre(l)`` feeds block ``l``
    the new value (``resid_post(l - 1)`` as read is unchanged). Implemented with plain PyTorch
    hooks on the modules of ``hook_points``; the hooks are removed on exit.
    """
    points = hook_points(loaded, list(edits))
    handles = []

    def new_value(edit: Edit, current: torch.Tensor) -> torch.Tensor:
        if callable(edit):
            value = edit(current)
        else:
            value = edit.to(device=current.device, dtype=current.dtype).expand_as(current)
        if value.shape != current.shape:
            raise ValueError(f"edit has shape {tuple(value.shape)}, site {tuple(current.shape)}")
        return value

    def writer(edit: Edit, point: HookPoint):
        if point.side == "input":

            def pre_hook(module, args, kwargs):
                if args:
                    return (new_value(edit, args[0]), *args[1:]), kwargs
                kwargs = dict(kwargs, hidden_states=new_value(edit, kwargs["hidden_states"]))
                return args, kwargs

            return pre_hook

        def hook(module, args, output):
            if point.index is None:
                return new_value(edit, output)
            items = list(output)
            items[point.index] = new_value(edit, items[point.index])
            return type(output)(items) if isinstance(output, tuple) else items

        return hook

    try:
        for site, point in points.items():
            module = _module(loaded.model, point.path)
            fn = writer(edits[site], point)
            fn._valuebias_edit = True  # lets the nnsight reader refuse to read around it
            if point.side == "input":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------- self-check


@torch.no_grad()
def check_sites(loaded: LoadedModel, backend: Backend = "torch", atol: float | None = None) -> None:
    """nnterp-style check that the sites decompose the residual stream on this model.

    On a short input: ``resid_pre(0)`` equals the embedding output, ``resid_post(l) ==
    resid_pre(l + 1)``, ``resid_pre + attn_out + mlp_out == resid_post`` for every block, and the
    final norm of the last ``resid_post`` equals the backbone's output. Raises ``UserError``.
    """
    ids = loaded.tokenizer("Site check: a quick brown fox.", add_special_tokens=False).input_ids
    batch = right_pad([ids[:10]], loaded.tokenizer.pad_token_id or 0).to(loaded.device)
    sites = make_sites(SITE_KINDS, range(loaded.n_layers))
    got = SiteReader(loaded, backend).read(batch, sites, lambda s, t: t.float())
    tol = atol if atol is not None else (1e-4 if loaded.dtype == torch.float32 else 5e-2)

    def fail(what: str, diff: float) -> None:
        raise UserError(f"{loaded.name}: site self-check failed: {what} (max diff {diff:.3g})")

    # Gemma's scaled embedding module applies its sqrt(d_model) factor in its own forward.
    embed = loaded.backbone.get_input_embeddings()(batch.input_ids).float()
    diff = (got[Site(0, "resid_pre")] - embed).abs().max().item()
    if diff > tol * max(1.0, embed.abs().max().item()):
        fail("resid_pre(0) is not the embedding output", diff)
    for layer in range(loaded.n_layers):
        pre, post = got[Site(layer, "resid_pre")], got[Site(layer, "resid_post")]
        total = pre + got[Site(layer, "attn_out")] + got[Site(layer, "mlp_out")]
        scale = max(1.0, post.abs().max().item())
        diff = (total - post).abs().max().item()
        if diff > tol * scale:
            fail(f"resid_pre + attn_out + mlp_out != resid_post at block {layer}", diff)
        if layer + 1 < loaded.n_layers:
            diff = (got[Site(layer + 1, "resid_pre")] - post).abs().max().item()
            if diff > tol * scale:
                fail(f"resid_post({layer}) != resid_pre({layer + 1})", diff)
    final_norm = getattr(loaded.backbone, "norm", None)
    if final_norm is None:
        return
    final = loaded.backbone(**batch.model_inputs()).last_hidden_state.float()
    normed = final_norm(got[Site(loaded.n_layers - 1, "resid_post")].to(loaded.dtype))
    diff = (normed.float() - final).abs().max().item()
    if diff > tol * max(1.0, final.abs().max().item()):
        fail("final norm of the last resid_post differs from the backbone output", diff)
