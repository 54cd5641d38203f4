"""Reading site tensors for right-padded token batches, with one of three backends.

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

``read_after_prefix`` reads the sites of suffix rows run on top of a shared prefix
(``interp.scoring.PrefixRunner``: the prefix ran once, its keys/values are shared): the tensors
are ``[B, S, d]`` over the suffix positions only, equal to the same positions of the whole
sequences. The suffix rows may be right-padded (causal attention: a real token never sees the
pads after it). ``torch`` and ``nnsight`` backends; the TransformerLens bridge cannot.

Read with the ``torch`` backend inside ``interp.sites.edit.edit_sites``: nnsight captures a
module's output *before* PyTorch forward hooks run, so it would report pre-edit values (it refuses
to, with a clear error). Downstream effects of an edit are seen by every backend.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from interp.batching import TokenBatch
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.sites.architectures import HookPoint, hook_points, module_at
from interp.sites.edit import is_edit_hook
from interp.sites.names import Site

BACKENDS: tuple[str, ...] = ("nnsight", "torch", "tl")

Backend = Literal["nnsight", "torch", "tl"]
Select = Callable[[Site, torch.Tensor], torch.Tensor]


def _order(site: Site) -> tuple[int, int]:
    return site.order


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
                return _read_nnsight(
                    self._nnsight, self.loaded, batch.model_inputs(), ordered, select
                )
            if self.backend == "tl":
                return _read_tl(self._bridge, batch, ordered, select)
            run = functools.partial(self.loaded.backbone, **batch.model_inputs(), use_cache=False)
            return _read_torch(self.loaded, run, ordered, select)

    def read_after_prefix(
        self, runner, suffix: torch.Tensor, sites: Sequence[Site], select: Select | None = None
    ) -> dict[Site, torch.Tensor]:
        """Sites of ``suffix`` ``[B, S]`` rows run after ``runner``'s shared prefix (see the
        module docstring): ``{site: select(site, [B, S, d])}``."""
        from interp.prefix_attention import shared_prefix_attention

        if self.backend == "tl":
            raise ValueError("the TransformerLens bridge cannot read after a shared prefix")
        select = select or _identity
        ordered = sorted(set(sites), key=_order)
        suffix = suffix.to(self.loaded.device)
        with torch.no_grad():
            if self.backend == "torch":
                return _read_torch(self.loaded, lambda: runner.run(suffix), ordered, select)
            inputs = {"input_ids": suffix, "position_ids": runner.positions(suffix)}
            with shared_prefix_attention(self.loaded.model, runner.kv):
                return _read_nnsight(self._nnsight, self.loaded, inputs, ordered, select)


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
    loaded: LoadedModel, run: Callable[[], object], sites: list[Site], select: Select
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
            module = module_at(loaded.model, point.path)
            fn = reader(site, point)
            if point.side == "input":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(fn))
        try:
            run()
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
    wrapped, loaded: LoadedModel, inputs: dict, sites: list[Site], select: Select
) -> dict[Site, torch.Tensor]:
    # The trace body runs interleaved with the forward pass, so values must be requested in
    # execution order (``sites`` is sorted); the tracer stops after the last one.
    points = hook_points(loaded, sites)
    for site, point in points.items():
        hooks = module_at(loaded.model, point.path)._forward_hooks.values()
        if point.side == "output" and any(is_edit_hook(h) for h in hooks):
            raise ValueError(
                f"{site} is being edited (edit_sites); nnsight reads module outputs before "
                "PyTorch forward hooks run, so it would miss the edit; read with "
                "backend='torch' inside edit_sites"
            )
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
