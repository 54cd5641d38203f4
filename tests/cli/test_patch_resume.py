"""``patch`` as work units: a run interrupted after some item groups keeps them, and the rerun
computes only the rest, with every per-item value equal to an uninterrupted run's."""

from __future__ import annotations

import pandas as pd
import pytest

from analyses.runs.patch import PatchSettings, run_patch
from interp.patching import sweep as sweep_module
from interp.sweeps.parts import parts_folder
from tests.helpers import AGENCY, COMMUNION, other_rm


def test_patch_resumes_from_the_groups_it_finished(tmp_path, tiny_llama_rm, other_dir, monkeypatch):
    words = tmp_path / "words.csv"
    rows = [(w, "Agency") for w in AGENCY[:3]] + [(w, "Communion") for w in COMMUNION[:3]]
    rows += [("achievement of friendship", "Agency"), ("care and trust", "Communion")]
    pd.DataFrame(rows, columns=["response", "category"]).to_csv(words, index=False)

    def settings(out):
        return PatchSettings(
            base=other_rm(other_dir, "llama"), rm=tiny_llama_rm, responses=str(words), out=out,
            prompt_keys=("greatest_ever_one", "worst_ever_one"), sites=("resid_pre",),
            layers="0,2", positions="last", bootstrap=50, permutations=50,
        )  # fmt: skip

    whole = run_patch(settings(tmp_path / "whole"))
    n_groups = len(whole.sweep.items.groups)
    assert n_groups >= 4  # prompts x token lengths
    calls = {"n": 0}
    real = sweep_module.patched_scores

    def stop_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # two groups (the self-test calls the runner directly)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "patched_scores", stop_after_two)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_patch(settings(out))
    done = list((parts_folder(out) / "units").glob("*.done.json"))
    assert len(done) == 2 and not (out / "patch_effects.csv").exists()
    monkeypatch.setattr(sweep_module, "patched_scores", real)
    calls["n"] = 0
    counting = {"n": 0}

    def count(*args, **kwargs):
        counting["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "patched_scores", count)
    again = run_patch(settings(out))
    assert counting["n"] == n_groups - 2  # only the groups left
    a = pd.read_parquet(tmp_path / "whole" / "patch_items.parquet")
    b = pd.read_parquet(out / "patch_items.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert again.effects["normalised_effect"].equals(whole.effects["normalised_effect"])
    assert not parts_folder(out).exists()
