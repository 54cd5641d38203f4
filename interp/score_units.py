"""One work unit of a scoring sweep: a prompt's candidates ``[start, stop)`` scored into rows.

``ScoreUnits`` is plain, picklable data (the model spec, prompts, responses, batch size), so the
same object computes units in this process, in every torchrun rank or in a Ray actor; it loads
the model on its first unit and keeps it. Rows are exactly ``interp.scoring.score_block``'s for
the slice, so a sweep cut into units and concatenated in unit order is the same table however
many workers computed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from interp.budget import fitted_rows
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.progress import NoProgress, Progress
from interp.prompts import Prompt
from interp.scoring import Responses, score_block
from interp.sweeps.plan import WorkUnit


@dataclass
class ScoreUnits:
    """Computes score-table rows of a unit (``__call__``); ``loaded`` is filled on first use."""

    spec: ModelSpec
    prompts: tuple[Prompt, ...]
    responses: Responses
    batch_size: int | None = None
    loaded: LoadedModel | None = field(default=None, repr=False)
    progress: Progress = field(default_factory=NoProgress, repr=False)

    def model(self) -> LoadedModel:
        if self.loaded is None:
            self.loaded = load_model(self.spec, self.progress)
        return self.loaded

    def __call__(self, unit: WorkUnit) -> pd.DataFrame:
        block = self.responses.slice(unit.start, unit.stop)
        loaded = self.model()
        rows = score_block(loaded, self.prompts[unit.prompt], block, self.batch_size)
        # the done marker records the model and any batch size that out-of-memory halved
        rows.attrs["meta"] = {"model": loaded.provenance(), "fitted_rows": fitted_rows()}
        return rows

    def __getstate__(self) -> dict:  # ship the recipe, never a loaded model
        return {**self.__dict__, "loaded": None, "progress": NoProgress()}

    def factory(self):
        """A picklable zero-argument callable returning this computer (for Ray actors)."""
        return _Factory(self)


@dataclass
class _Factory:
    units: ScoreUnits

    def __call__(self) -> ScoreUnits:
        return self.units
