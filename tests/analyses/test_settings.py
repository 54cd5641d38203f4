"""Every numeric option is validated where it is declared: the click range on the command line
and the same check for settings built in Python (``analyses.runs.options.Settings``)."""

from __future__ import annotations

import math

import pytest

import analyses.runs  # noqa: F401  (every command's settings)
import cli  # noqa: F401
from analyses.runs.options import Settings, cli_options
from analyses.runs.train_rm import TrainRmSettings
from interp.errors import UserError


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_subclasses(sub)}
    return out


MIXINS = (
    "ModelChoice",
    "PromptChoice",
    "TextInputs",
    "Resampling",
    "Overwrite",
    "WordContrastChoice",
)
SETTINGS = sorted(
    (c for c in _subclasses(Settings) if c.__name__ not in MIXINS), key=lambda c: c.__name__
)
BOUNDED = [
    (cls, name, opt)
    for cls in SETTINGS
    for name, _default, opt in cli_options(cls)
    if opt.kind in ("int", "float") and (opt.low is not None or opt.above is not None)
]


def test_every_bounded_option_is_found():
    names = {(cls.__name__, name) for cls, name, _ in BOUNDED}
    for expected in [("StatsSettings", "permutations"), ("StatsSettings", "bootstrap"),
                     ("PatchSettings", "permutations"), ("TrainRmSettings", "max_pairs"),
                     ("TrainRmSettings", "lora"), ("TrainRmSettings", "lr"),
                     ("TrainProbesSettings", "C"), ("ScoreSettings", "batch_size")]:  # fmt: skip
        assert expected in names


@pytest.mark.parametrize(
    "cls, name, opt", BOUNDED, ids=[f"{c.__name__}.{n}" for c, n, _ in BOUNDED]
)
def test_python_callers_get_the_same_range_check(cls, name, opt):
    low = opt.above if opt.above is not None else opt.low
    bad = (low - 1) if opt.kind == "int" else (low if opt.above is not None else low - 0.5)
    with pytest.raises(UserError, match=opt.flags[0]):
        cls(**{name: int(bad) if opt.kind == "int" else bad})
    if opt.kind == "float":
        with pytest.raises(UserError, match="finite"):
            cls(**{name: math.nan})


def test_wrong_types_and_choices_are_refused_in_python():
    with pytest.raises(UserError, match="whole number"):
        TrainRmSettings(epochs=1.5)
    with pytest.raises(UserError, match="choose one of"):
        TrainRmSettings(save="some")
    with pytest.raises(UserError, match="--lora"):
        TrainRmSettings(lora=0)  # never silently rank 8
    assert TrainRmSettings(lora=3).train_config().lora_rank == 3
