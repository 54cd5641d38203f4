"""Stages 1-3 of an audit: which values the RM prefers, whether its base already did, the MWLR.

1. ``1-rm-preference``: ``score`` (the RM's reward for every word under every prompt), then
   ``analysis``: per framing (and pooled) the word-level score gap (``analyses.stats.contrast``:
   difference and Cohen's d with bootstrap CIs, permutation Welch test, unit = word, Bonferroni
   over the framings) and the median-rank gap (``analyses.stats.preference``: unit = prompt).
2. ``2-base-preference``: the same for the base model's log-probs (nats), then ``inheritance``:
   Spearman's rho between the two models' word preferences and the share of the RM's
   standardised gap the base already shows (``analyses.stats.preference``).
3. ``3-implicit-reward`` (with ``--versus LM``): ``implicit-reward`` of the base (model 2) over
   the other LM (model 1), so MWLR > 0 marks words the base favours more.

Every step is a call of a run function (``run_score``, ``run_implicit_reward``) or reads their
files; results are JSON rows for the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.inputs import model_identity
from analyses.audit.ledger import Ledger, Step
from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.responses import load_responses
from analyses.inputs.score_table import read_score_table
from analyses.runs.implicit_reward import ImplicitRewardSettings, run_implicit_reward
from analyses.runs.score import ScoreSettings, run_score
from analyses.stats.contrast import CategoryWords, category_words, contrast_by
from analyses.stats.preference import gap_shares, preference_correlations, rank_gaps
from interp.atomic import atomic_write_text
from interp.errors import UserError


@dataclass(frozen=True)
class AuditInputs:
    """Stage 0's files (absolute paths) and sizes."""

    words: Path
    patch_words: Path
    prompts: dict[str, Path]
    n_words: int
    n_patch_words: int
    n_prompts: dict[str, int]

    @classmethod
    def from_results(cls, root: Path, words: dict, prompts: dict) -> AuditInputs:
        files = {k: root / v["file"] for k, v in prompts.items() if isinstance(v, dict)}
        counts = {k: len(v["keys"]) for k, v in prompts.items() if isinstance(v, dict)}
        return cls(root / words["file"], root / words["patch_file"], files,
                   int(words["n_words"]), int(words["n_patch_words"]), counts)  # fmt: skip

    def design(self, config: AuditConfig) -> CategoryWords:
        rs = load_responses(str(self.words))
        return category_words(rs.categories, config.gap, list(rs.responses.words))


def framings(table: pd.DataFrame) -> tuple[list[str], str | None]:
    """The framings present (in design order) and the pooled label when there are several."""
    present = [f for f in ("positive", "negative", "none") if f in set(table["framing"])]
    return present, ("all" if len(present) > 1 else None)


def _rank_row(gap) -> dict:
    return {
        "framing": gap.label, "first": gap.first, "second": gap.second,
        "gap": asdict(gap.gap), "d_z": gap.d_z, "test": asdict(gap.test),
        "per_prompt": list(gap.per_prompt),
    }  # fmt: skip


def preference_analysis(
    config: AuditConfig, inputs: AuditInputs, scores: Path, folder: Path
) -> dict:
    """Word-level gap and median-rank gap per framing of one score table; CSVs in ``folder``."""
    table = read_score_table(scores)
    design = inputs.design(config)
    subsets, pooled = framings(table)
    resampling = dict(n_permutations=config.permutations, n_bootstrap=config.bootstrap,
                      seed=config.seed)  # fmt: skip
    contrasts = contrast_by(table, design, value="score", by="framing", subsets=subsets,
                            pooled=pooled, correction="bonferroni", **resampling)  # fmt: skip
    lexicon = load_lexicon(str(inputs.words))
    ranks = rank_gaps(table, lexicon, design, pooled=pooled, **resampling)
    rows = [c.row(by="framing") for c in contrasts]
    atomic_write_text(folder / "contrasts.csv", pd.DataFrame(rows).to_csv(index=False))
    rank_rows = [_rank_row(r) for r in ranks]
    flat = pd.json_normalize(rank_rows).drop(columns=["per_prompt"])
    atomic_write_text(folder / "rank_gaps.csv", flat.to_csv(index=False))
    tokens = table.assign(category=table["response"].map(_category_of(design)))
    n_tokens = tokens.dropna(subset=["category"]).groupby("category")["n_tokens"].mean()
    return {
        "contrasts": rows,
        "rank_gaps": rank_rows,
        "mean_tokens_per_word": {k: float(v) for k, v in n_tokens.items()},
        "template": sorted(set(table["template"])) if "template" in table else [],
    }


def _category_of(design: CategoryWords) -> dict[str, str]:
    return {**{w: design.pair.first for w in design.first},
            **{w: design.pair.second for w in design.second}}  # fmt: skip


def _score_step(stage: str, config: AuditConfig, inputs: AuditInputs, ledger: Ledger,
                progress, role: str) -> Step:  # fmt: skip
    is_rm = role == "rm"
    name = config.rm if is_rm else config.base
    revision = config.rm_revision if is_rm else config.base_revision

    def run(folder: Path) -> dict:
        settings = ScoreSettings(
            model=name, kind="rm" if is_rm else "lm", revision=revision,
            random_head=config.rm_random_head if is_rm else None, device=config.device,
            prompts=str(inputs.prompts["all"]), responses=str(inputs.words),
            out=folder / "scores.parquet", **config.load_kwargs(),
        )  # fmt: skip
        result = run_score(settings, progress=progress)
        return {"file": ledger.rel(result.out), "n_rows": result.n_rows,
                "model": result.provenance["model"]}  # fmt: skip

    settings = {
        "model": model_identity(name, revision), "kind": role,
        "random_head": config.rm_random_head if is_rm else None, "device": config.device,
    }  # fmt: skip
    weight = 10.0 + inputs.n_words * inputs.n_prompts["all"]  # + loading the model
    return Step(stage, "scores", settings, run, ("0-inputs/words", "0-inputs/prompts"), weight)


def _analysis_step(stage: str, config: AuditConfig, inputs: AuditInputs, ledger: Ledger) -> Step:
    def run(folder: Path) -> dict:
        scores = ledger.root / ledger.results[f"{stage}/scores"]["file"]
        return preference_analysis(config, inputs, scores, folder)

    settings = {"resampling": [config.permutations, config.bootstrap, config.seed],
                "gap": list(config.gap)}  # fmt: skip
    return Step(stage, "analysis", settings, run, (f"{stage}/scores",), 0.02 * inputs.n_words)


def _inheritance_step(config: AuditConfig, inputs: AuditInputs, ledger: Ledger) -> Step:
    def run(folder: Path) -> dict:
        base = read_score_table(ledger.root / ledger.results["2-base-preference/scores"]["file"])
        rm = read_score_table(ledger.root / ledger.results["1-rm-preference/scores"]["file"])
        design = inputs.design(config)
        _subsets, pooled = framings(rm)
        words = list(design.first + design.second)
        resampling = dict(n_bootstrap=config.bootstrap, seed=config.seed, pooled=pooled)
        rhos = preference_correlations(base, rm, words, n_permutations=config.permutations,
                                       **resampling)  # fmt: skip
        shares = gap_shares(base, rm, design, **resampling)
        rows = {
            "correlations": [
                {"framing": c.label, "rho": asdict(c.rho), "test": asdict(c.test)} for c in rhos
            ],
            "shares": [
                {"framing": s.label, "share": asdict(s.share), "d_base": s.d_base, "d_rm": s.d_rm}
                for s in shares
            ],
        }
        flat = pd.json_normalize(rows["correlations"] + rows["shares"])
        atomic_write_text(folder / "inheritance.csv", flat.to_csv(index=False))
        return rows

    settings = {"resampling": [config.permutations, config.bootstrap, config.seed],
                "gap": list(config.gap)}  # fmt: skip
    needs = ("1-rm-preference/scores", "2-base-preference/scores")
    return Step("2-base-preference", "inheritance", settings, run, needs, 0.1 * inputs.n_words)


def _implicit_step(config: AuditConfig, inputs: AuditInputs, ledger: Ledger, progress) -> Step:
    def run(folder: Path) -> dict:
        settings = ImplicitRewardSettings(
            model_1=config.versus, model_2=config.base, out=folder,
            prompts=str(inputs.prompts["all"]), lexicon=str(inputs.words), keep_pronouns=True,
            categories=config.gap, top_k=config.top_k, device=config.device,
            permutations=config.permutations, bootstrap=config.bootstrap, seed=config.seed,
            overwrite=True,
        )  # fmt: skip
        try:
            result = run_implicit_reward(settings, progress=progress)
        except UserError as err:  # e.g. no lexicon word is a single token of both vocabularies
            progress.note(f"implicit reward not possible: {err}")
            return {"not_possible": str(err)}
        s = result.summary
        return {
            "definition": s["definition"], "model_1": s["model_1"], "model_2": s["model_2"],
            "comparison": s["comparison"], "top": s["top"], "bottom": s["bottom"],
            "figure": ledger.rel(folder / "top_bottom.png"),
            "models": s["provenance"]["models"],
        }  # fmt: skip

    settings = {
        "versus": model_identity(config.versus or ""), "base": model_identity(config.base),
        "resampling": [config.permutations, config.bootstrap, config.seed],
        "gap": list(config.gap), "top_k": config.top_k, "device": config.device,
    }  # fmt: skip
    needs = ("0-inputs/words", "0-inputs/prompts")
    return Step("3-implicit-reward", "mwlr", settings, run, needs, 2.0 * inputs.n_prompts["all"])


def preference_stages(config: AuditConfig, inputs: AuditInputs, ledger: Ledger,
                      progress) -> dict[str, list[Step]]:  # fmt: skip
    """The steps of stages 1-3 that ``config`` enables, by stage folder."""
    stages: dict[str, list[Step]] = {}
    if config.enabled("rm-preference") or config.enabled("base-preference"):
        stages["1-rm-preference"] = [
            _score_step("1-rm-preference", config, inputs, ledger, progress, "rm"),
            _analysis_step("1-rm-preference", config, inputs, ledger),
        ]
    if config.enabled("base-preference"):
        stages["2-base-preference"] = [
            _score_step("2-base-preference", config, inputs, ledger, progress, "base"),
            _analysis_step("2-base-preference", config, inputs, ledger),
            _inheritance_step(config, inputs, ledger),
        ]
    if config.enabled("implicit-reward"):
        stages["3-implicit-reward"] = [_implicit_step(config, inputs, ledger, progress)]
    return stages
