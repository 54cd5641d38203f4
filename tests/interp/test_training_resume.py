"""``train-rm`` killed mid-epoch (SIGKILL) and run again: it resumes from its last saved state and
ends with the weights, held-out accuracy and durability numbers of an uninterrupted run.

Tolerance: weights are compared with ``atol=1e-6`` (float32); the measured difference is 0 on CPU
with the same thread count (the resumed steps replay the same arithmetic).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from interp.atomic import staging_path
from interp.errors import UserError
from tests.interp.test_training import synthetic_pairs

KILL_AFTER_STEP = 7  # epoch 2 of 2 runs steps 6..10: step 7 is mid-epoch, after the state of step 6


def _data(folder: Path) -> Path:
    rows = [
        {"prompt": p.context[0][1], "chosen": p.chosen, "rejected": p.rejected}
        for p in synthetic_pairs(24, seed=3)
    ]
    path = folder / "pairs.json"
    path.write_text(json.dumps(rows))
    return path


def _words(folder: Path) -> Path:
    path = folder / "words.csv"
    path.write_text(
        "response,category\npower,Agency\nsuccess,Agency\nvictory,Agency\n"
        "love,Communion\ncare,Communion\nfamily,Communion\n"
    )
    return path


def _settings(base: str, folder: Path, out: Path, **extra) -> dict:
    return dict(
        base=base, data=str(_data(folder)), out=out, lora=4, epochs=2, batch_size=4,
        eval_fraction=0.25, checkpoint_every=3, state_every=1e6, seed=5, lr=5e-3,
        lexicon=str(_words(folder)), prompt_keys=("best_ever_one", "worst_ever_one"), **extra,
    )  # fmt: skip


KILLER = """
import os, signal, sys
from pathlib import Path
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from interp.progress import NoProgress

class Killer(NoProgress):
    n = 0
    def advance(self, n=1):
        self.n += n
        if self.n == {kill} + 1:  # one advance for checkpoint 0, then one per step
            os.kill(os.getpid(), signal.SIGKILL)

kw = {kw}
kw["out"] = Path(kw["out"])
kw["prompt_keys"] = tuple(kw["prompt_keys"])
run_train_rm(TrainRmSettings(**kw), progress=Killer())
print("finished")
"""


def _weights(out: Path) -> dict[str, np.ndarray]:
    final = json.loads((out / "train_summary.json").read_text())["final_checkpoint"]
    assert Path(final).parent == out  # the record names the final place, not the staging one
    return load_file(str(Path(final) / "model.safetensors"))


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path, tiny_llama_lm):
    whole = tmp_path / "whole"
    run_train_rm(TrainRmSettings(**_settings(tiny_llama_lm, tmp_path, whole)))

    out = tmp_path / "killed"
    kw = _settings(tiny_llama_lm, tmp_path, out)
    code = KILLER.format(kill=KILL_AFTER_STEP, kw=repr({**kw, "out": str(out)}))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "finished" not in proc.stdout
    assert not out.exists()  # nothing under the final name ...
    staged = staging_path(out)
    state = json.loads((staged / "resume.json").read_text())  # ... the saved state is staged
    assert state["step"] == 6 and state["epoch"] == 1 and state["batch"] == 1

    run = run_train_rm(TrainRmSettings(**kw))  # the same command again
    assert not staged.exists() and not list(out.glob("resume*"))
    record = json.loads((out / "train_record.json").read_text())
    assert record["resumed_after_step"] == 6
    a, b = _weights(whole), _weights(out)
    assert a.keys() == b.keys()
    diff = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
    assert diff <= 1e-6, diff
    print(f"max |weight difference| resumed vs uninterrupted: {diff:.3g}")
    whole_acc = json.loads((whole / "train_summary.json").read_text())["heldout_accuracy"]
    assert {str(k): v for k, v in run.summary["heldout_accuracy"].items()} == whole_acc
    metrics = [pd.read_csv(p / "training_metrics.csv") for p in (whole, out)]
    for col in ("step", "heldout_accuracy", "heldout_loss", "train_loss"):
        np.testing.assert_allclose(metrics[0][col], metrics[1][col], atol=1e-6)
    dur = [pd.read_csv(p / "durability.csv") for p in (whole, out)]
    assert len(dur[0]) == len(dur[1]) > 0
    np.testing.assert_allclose(dur[0]["d"], dur[1]["d"], atol=1e-6)
    np.testing.assert_allclose(dur[0]["p"], dur[1]["p"], atol=1e-12)


def test_unfinished_run_with_other_settings_is_refused(tmp_path, tiny_llama_lm):
    out = tmp_path / "rm"
    staged = staging_path(out)
    staged.mkdir()
    (staged / ".valuebias-staging.json").write_text(json.dumps({"key": "another-run"}))
    with pytest.raises(UserError, match="unfinished run .* other settings"):
        run_train_rm(TrainRmSettings(**_settings(tiny_llama_lm, tmp_path, out)))
    assert staged.exists()  # kept: only --overwrite discards it
    (out).mkdir()
    (out / "old-checkpoint").mkdir()
    with pytest.raises(UserError, match="already holds a run .*--overwrite"):
        run_train_rm(TrainRmSettings(**_settings(tiny_llama_lm, tmp_path, out)))
