"""nnterp-style load-time check that the site map decomposes the residual stream on a model."""

from __future__ import annotations

import torch

from interp.batching import right_pad
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.sites.names import SITE_KINDS, Site, make_sites
from interp.sites.read import Backend, SiteReader


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
