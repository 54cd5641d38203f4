"""Fixtures of the audit and report tests: a tiny random base/RM pair and one audit of it.

The pair: the session's tiny Llama LM as the base and a tiny Llama RM with other weights (the
same tokenizer and shapes, so every stage, patching included, can run). ``tiny_audit`` runs
every stage once per session (the implicit reward against a third tiny LM, the token sweep on
the tiny 400-token vocabulary) with small resampling counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import AGENCY, COMMUNION, build_tiny_model, other_rm, word_categories

TINY_AGENCY = (*AGENCY, "best", "greatest")
"""The toy Agency words plus two that are single tokens of the tiny tokenizer (as ``love`` and
``kindness`` are among the Communion words), so the implicit reward has strings to compare."""
TINY_COMMUNION = COMMUNION

TINY_SETTINGS = {
    "max_prompts": 4,
    "internal_prompts": 2,
    "patch_prompts": 2,
    "probe_folds": 3,
    "permutations": 200,
    "bootstrap": 100,
    "position_layers": 2,
    "position_last": 3,
    "top_k": 5,
}


@pytest.fixture(scope="session")
def tiny_pair(tiny_llama_lm, other_dir, tmp_path_factory) -> dict:
    """``base``, ``rm`` (folders) and ``lexicon`` (a word,category CSV of 8 + 6 toy words)."""
    words = tmp_path_factory.mktemp("audit-words") / "words.csv"
    table = word_categories(TINY_AGENCY, TINY_COMMUNION)
    table.rename(columns={"response": "word"}).to_csv(words, index=False)
    versus = other_dir / "llama-lm-s2"
    if not (versus / "config.json").exists():
        build_tiny_model(versus, arch="llama", kind="lm", seed=2)
    return {"base": tiny_llama_lm, "rm": other_rm(other_dir, "llama", seed=1),
            "versus": str(versus), "lexicon": str(words)}  # fmt: skip


def tiny_settings(pair: dict, out: Path, **more):
    from analyses.runs.audit import AuditSettings

    return AuditSettings(rm=pair["rm"], base=pair["base"], lexicon=pair["lexicon"], out=out,
                         **{**TINY_SETTINGS, **more})  # fmt: skip


@pytest.fixture(scope="session")
def tiny_audit(tiny_pair, tmp_path_factory):
    """One audit of the tiny pair with every stage (``AuditRun``)."""
    from analyses.runs.audit import run_audit

    out = tmp_path_factory.mktemp("tiny-audit") / "audit"
    settings = tiny_settings(tiny_pair, out, versus=tiny_pair["versus"], token_sweep=True)
    return run_audit(settings)
