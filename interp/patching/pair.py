"""A base model and an RM fine-tuned from it: loading the pair and refusing pairs that differ.

Patching needs a shared residual basis and identical token ids, so the two models must share the
architecture, depth, width and tokenizer; ``check_pair`` names whichever differs.
"""

from __future__ import annotations

from interp.errors import UserError
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.progress import Progress


def check_pair(base: LoadedModel, rm: LoadedModel) -> None:
    """Refuse pairs that differ in architecture, layer count, width or tokenizer (saying which)."""
    a, b = base.model.config.get_text_config(), rm.model.config.get_text_config()
    problems = []
    if a.model_type != b.model_type or type(base.backbone).__name__ != type(rm.backbone).__name__:
        problems.append(
            f"architecture ({a.model_type}/{type(base.backbone).__name__} vs "
            f"{b.model_type}/{type(rm.backbone).__name__})"
        )
    if base.n_layers != rm.n_layers:
        problems.append(f"layer count ({base.n_layers} vs {rm.n_layers})")
    if base.d_model != rm.d_model:
        problems.append(f"width ({base.d_model} vs {rm.d_model})")
    va, vb = base.tokenizer.get_vocab(), rm.tokenizer.get_vocab()
    if va != vb:
        differ = sum(1 for t in set(va) | set(vb) if va.get(t) != vb.get(t))
        problems.append(f"tokenizer ({len(va)} vs {len(vb)} tokens, {differ} differ)")
    else:
        probe = "Agency and communion: what, in one word, is the greatest thing ever?"
        if base.tokenizer(probe).input_ids != rm.tokenizer(probe).input_ids:
            problems.append("tokenizer (same vocabulary, different tokenisation)")
    if problems:
        raise UserError(
            f"cannot patch between {base.name} and {rm.name}: they differ in " + "; ".join(problems)
        )


def load_pair(
    base_name: str, rm_name: str, device: str | None, progress: Progress | None = None, **load
) -> tuple[LoadedModel, LoadedModel]:
    """Load the base (as an LM; only its decoder stack is used) and the RM in float32.

    ``load``: further ``ModelSpec`` keywords (``trust_remote_code``, ``device_map``, ...)."""
    rm = load_model(ModelSpec(rm_name, kind="rm", dtype="float32", device=device, **load), progress)
    spec = ModelSpec(base_name, kind="lm", dtype="float32", device=device, **load)
    base = load_model(spec, progress)
    check_pair(base, rm)
    return base, rm
