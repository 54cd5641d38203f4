"""Reference patching, the TransformerLens way: one full forward pass of the receiver per patch.

Right-padded full sequences (the same ids and mask go to both models). Slow and obviously
correct: the tests check the fast sweep against it and the benchmark times it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interp.batching import right_pad
from interp.models.loading import LoadedModel
from interp.patching.runner import Readout
from interp.patching.specs import PatchSpec
from interp.sites.edit import Replacement, site_hooks
from interp.spans import forward_span


def _read_rows(readout: Readout, final: torch.Tensor, batch) -> torch.Tensor:
    """The readout of each right-padded row's own (unpadded) final residual stream."""
    rows = torch.arange(batch.size, device=final.device)
    if readout.kind == "linear":
        return readout(final[rows, batch.lengths - 1])
    empty = final[:1, :0]
    return torch.cat(
        [
            readout.read(final[r : r + 1, :n], empty, batch.input_ids[r : r + 1, :n])
            for r, n in enumerate(batch.lengths.tolist())
        ]
    )


@torch.no_grad()
def plain_patched_scores(
    receiver: LoadedModel,
    source: LoadedModel,
    sequences: Sequence[Sequence[int]],
    patches: Sequence[PatchSpec],
    readout: Readout,
    pad_id: int,
    batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TransformerLens-style patching: for each batch, cache the source's sites in one forward
    pass, then one full forward pass of the receiver per patch. Sequences are right-padded (the
    same ids and mask go to both models). Returns (patched ``[n_patches, N]``, clean ``[N]``).
    A patch with a position writes that offset from each row's own end."""
    n_layers = receiver.n_layers
    keys = sorted({p.key for p in patches}, key=lambda k: (k[1], k[0]))
    out = torch.full((len(patches), len(sequences)), float("nan"))
    clean = torch.empty(len(sequences))
    for start in range(0, len(sequences), batch_size):
        batch = right_pad(sequences[start : start + batch_size], pad_id).to(device)
        rows = torch.arange(batch.size, device=device)
        capture = {k: [] for k in keys}
        with site_hooks(source, capture=capture):
            forward_span(source.backbone, 0, n_layers, **batch.model_inputs())
        final = forward_span(receiver.backbone, 0, n_layers, **batch.model_inputs())
        clean[start : start + batch.size] = _read_rows(readout, final, batch).float().cpu()
        for i, spec in enumerate(patches):
            mask = batch.attention_mask.bool()
            if spec.position is not None:
                at = batch.lengths + spec.position
                mask = torch.zeros_like(mask)
                ok = at >= 0
                mask[rows[ok], at[ok]] = True
            rep = {spec.key: Replacement(capture[spec.key][0], mask)}
            with site_hooks(receiver, replace=rep):
                final = forward_span(receiver.backbone, 0, n_layers, **batch.model_inputs())
            scores = _read_rows(readout, final, batch).float().cpu()
            if spec.position is not None:
                scores[(batch.lengths + spec.position < 0).cpu()] = float("nan")
            out[i, start : start + batch.size] = scores
    return out, clean
