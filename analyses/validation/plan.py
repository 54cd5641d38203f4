"""Which organisms a validation run builds (the quick and the full set), and what they share.

Block positions are fractions of the model's depth, so the plan fits any embedded model. The quick
set (``validate --quick``) holds one organism of each kind and a negative control in every
family; the full set crosses several blocks, both components, both directions and two seeds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from interp.models.loading import LoadedModel
from interp.progress import Progress


@dataclass(frozen=True)
class BlockSpec:
    """Organism 1: ``component`` of ``block`` edited on ``labels`` (``none``: identical)."""

    block: int
    component: str
    labels: str
    seed: int

    @property
    def control(self) -> bool:
        return self.labels != "categories"

    @property
    def name(self) -> str:
        if self.labels == "none":
            return "block-identical"
        kind = "block-shuffled" if self.labels == "shuffled" else "block"
        return f"{kind}-{self.component}-k{self.block}"


@dataclass(frozen=True)
class TrainedSpec:
    """Organism 2: blocks ``block`` and ``block + 1`` trained on ``direction`` preferences."""

    block: int
    direction: str
    seed: int

    @property
    def control(self) -> bool:
        return self.direction == "shuffled"

    @property
    def name(self) -> str:
        return f"trained-{self.direction}-k{self.block}"


@dataclass(frozen=True)
class InheritedSpec:
    """Organisms 3 and 4 for one seed; ``control``: also the mixed-answer control base."""

    seed: int
    control: bool = True
    sft_examples: int = 96


@dataclass(frozen=True)
class Plan:
    blocks: tuple[BlockSpec, ...]
    trained: tuple[TrainedSpec, ...]
    inherited: tuple[InheritedSpec, ...]
    demo: bool

    def describe(self) -> dict:
        return {
            "block": [s.name + f" (seed {s.seed})" for s in self.blocks],
            "trained": [s.name + f" (seed {s.seed})" for s in self.trained],
            "inherited": [f"seed {s.seed}, control {s.control}" for s in self.inherited],
            "demo_pair": self.demo,
        }


def _at(n_layers: int, fraction: float) -> int:
    return min(n_layers - 2, max(1, round(fraction * n_layers)))


def quick_plan(n_layers: int) -> Plan:
    """One organism per kind, a negative control in every family, seed 0."""
    low, mid, high = _at(n_layers, 0.2), _at(n_layers, 0.5), _at(n_layers, 0.7)
    return Plan(
        blocks=(
            BlockSpec(low, "mlp", "categories", 0),
            BlockSpec(high, "attn", "categories", 0),
            BlockSpec(mid, "mlp", "none", 0),
            BlockSpec(mid, "mlp", "shuffled", 0),
        ),
        trained=(TrainedSpec(mid, "agency", 0), TrainedSpec(mid, "shuffled", 0)),
        inherited=(InheritedSpec(0, control=True),),
        demo=False,
    )


def full_plan(n_layers: int, seeds: tuple[int, ...] = (0, 1)) -> Plan:
    """Three blocks x both components x seeds; two trained blocks x three directions (the reverse
    at the first seed); inherited bias with its control per seed; the demo pair."""
    at = [_at(n_layers, f) for f in (0.15, 0.5, 0.8)]
    blocks = [BlockSpec(k, c, "categories", s) for s in seeds for k in at for c in ("mlp", "attn")]
    blocks += [BlockSpec(at[1], "mlp", "none", s) for s in seeds]
    blocks += [BlockSpec(at[1], c, "shuffled", s) for s in seeds for c in ("mlp", "attn")]
    trained_at = [_at(n_layers, f) for f in (0.3, 0.65)]
    trained = [TrainedSpec(k, "agency", s) for s in seeds for k in trained_at]
    trained += [TrainedSpec(k, "communion", seeds[0]) for k in trained_at]
    trained += [TrainedSpec(trained_at[0], "shuffled", s) for s in seeds]
    return Plan(tuple(blocks), tuple(trained), tuple(InheritedSpec(s) for s in seeds), demo=True)


@dataclass
class Context:
    """What every organism run shares: the embedded model, its base LM (loaded once), the word
    and prompt files, output folder, resampling sizes and whether model folders are kept."""

    model: str
    base: LoadedModel
    out: Path
    words: Path
    prompts_file: Path
    permutations: int
    bootstrap: int
    keep_models: bool
    progress: Progress
    removed: list[str] = field(default_factory=list)

    def folder(self, *parts: str) -> Path:
        path = self.out.joinpath("organisms", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def discard(self, path: Path) -> None:
        """Remove a model folder once every method has run on it (unless keeping models)."""
        if not self.keep_models and path.exists():
            shutil.rmtree(path)
            self.removed.append(str(path))
