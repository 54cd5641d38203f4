"""Writing site tensors: replace or transform activations in every forward pass inside a context.

``edit_sites`` is the one writer: plain PyTorch hooks on the modules of
``interp.sites.architectures.hook_points``. ``site_hooks`` builds on it for patching: it captures
site values into lists and/or overwrites masked positions with ``Replacement`` values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from interp.models.loading import LoadedModel
from interp.sites.architectures import HookPoint, hook_points, module_at
from interp.sites.names import Site

Edit = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def is_edit_hook(hook: object) -> bool:
    """True for a forward hook installed by ``edit_sites``."""
    return bool(getattr(hook, "_valuebias_edit", False))


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
            module = module_at(loaded.model, point.path)
            fn = writer(edits[site], point)
            fn._valuebias_edit = (
                True  # lets the nnsight reader refuse to read around it (is_edit_hook)
            )
            if point.side == "input":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Replacement:
    """Values to write at a site: ``values`` [B, T, d]; ``mask`` [B, T] bool (True = replace)."""

    values: torch.Tensor
    mask: torch.Tensor

    def apply(self, current: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask[..., None], self.values.to(current.dtype), current)


@contextlib.contextmanager
def site_hooks(
    loaded: LoadedModel,
    capture: dict[tuple[str, int], list[torch.Tensor]] | None = None,
    replace: dict[tuple[str, int], Replacement] | None = None,
) -> Iterator[None]:
    """Append site values to ``capture[(site, layer)]`` and/or overwrite sites with
    ``replace[(site, layer)]`` in every forward pass inside the block (replacement first; the
    captured value is what flows on). Built on ``edit_sites``, so the site map is
    the one every other command uses."""
    capture = capture or {}
    replace = replace or {}

    def edit_for(key):
        def edit(current: torch.Tensor) -> torch.Tensor:
            value = replace[key].apply(current) if key in replace else current
            if key in capture:
                capture[key].append(value.detach())
            return value

        return edit

    edits = {
        Site(layer, site): edit_for((site, layer)) for site, layer in set(capture) | set(replace)
    }
    with edit_sites(loaded, edits):
        yield
