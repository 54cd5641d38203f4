"""``implicit-reward``: MWLR of model 2 over model 1 on next-token distributions, with statistics.

Writes to ``out``: ``implicit_reward.parquet`` (every prompt x joined string, unmerged, with
lexicon categories), ``word_means.csv``, ``top_bottom.csv/.png/.svg`` (the paper's Table 1 by
default: the top-k and bottom-k joined strings, unmerged, by MWLR for the prompt
``greatest_ever_one``; ``--table-prompt all``: word-like strings by MWLR averaged over every
prompt under ``merge``), ``comparison.csv`` and ``summary.json`` (the category contrast ``first -
second`` for ``merge`` and, for reference, the other merge modes), the two models' lexicon
log-prob score tables and their Stage-2 statistics under ``stage2/`` (word match ``variants`` or
the paper's ``exact``, recorded), and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.inputs.lexicon import Lexicon
from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.prompts import load_prompts
from analyses.inputs.score_table import write_score_table
from analyses.runs.common import (
    Overwrite,
    Resampling,
    RunResult,
    TextInputs,
    in_run_folder,
    write_json,
    write_table,
)
from analyses.runs.options import option
from analyses.runs.stats import write_stage2
from analyses.stats.contrast import CategoryPair, Contrast
from analyses.stats.implicit_reward import (
    MERGE_MODES,
    WORD_MATCH,
    WORDLIKE,
    VocabularyJoin,
    category_contrasts,
    decoded_vocabulary,
    join_categories,
    joined_table,
    lexicon_logprob_scores,
    lexicon_word_means,
    merge_key,
)
from analyses.stats.stage2 import stage2
from interp.atomic import atomic_path
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.models.placement import check_device
from interp.progress import NoProgress, Progress
from interp.provenance import provenance
from interp.scoring import next_token_logprobs


@dataclass(frozen=True, kw_only=True)
class ImplicitRewardSettings(Resampling, TextInputs, Overwrite):
    """The two models, the prompts and lexicon, and how strings are merged."""

    model_1: str = option(
        "", "--model-1", required=True, help="Model p (embedded name, HF id, folder)."
    )
    model_2: str = option(
        "", "--model-2", required=True, help="Model q; MWLR > 0 favours this one."
    )
    out: Path = option(
        Path("implicit-out"), "--out", kind="path", required=True, help="Output folder."
    )
    prompts: str = option("paper54", "--prompts", help="Prompt set or file.")
    lexicon: str = option("big2", "--lexicon", help="Named lexicon or a file.")
    merge: str = option(
        "sum", "--merge", kind="choice", choices=MERGE_MODES,
        help="Merge case/whitespace variants: average log-probs (mean) or add probabilities (sum).",
    )  # fmt: skip
    keep_pronouns: bool = option(False, "--keep-pronouns", kind="flag",
                                 help="Keep the Big Two pronoun entries.")  # fmt: skip
    categories: CategoryPair = option(
        CategoryPair("Agency", "Communion"), "--categories", metavar="A,B",
        parse=lambda t: CategoryPair.parse(t, "--categories"),
        help="The contrast A - B.  [default: Agency,Communion]", show_default=False,
    )  # fmt: skip
    top_k: int = option(20, "--top-k", kind="int", low=1, help="Strings in the top/bottom tables.")
    table_prompt: str = option(
        "greatest_ever_one", "--table-prompt",
        help="Prompt of the top/bottom table (the paper's Table 1: unmerged strings for this "
        "prompt); 'all': word-like strings averaged over every prompt under --merge.",
    )  # fmt: skip
    stage2_match: str = option(
        "variants", "--stage2-match", kind="choice", choices=WORD_MATCH,
        help="Stage-2 word log-probs: best case/space variant, or exact (the paper's: a token "
        "that decodes to exactly the word).",
    )  # fmt: skip
    device: str | None = option(None, "--device", check=check_device, help="cpu, cuda, ... [auto].")
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")


@dataclass(frozen=True)
class ImplicitRewardRun(RunResult):
    """What ``run_implicit_reward`` wrote: the MWLR contrasts, then the raw log-ratio ones."""

    contrasts: tuple[Contrast, ...] = ()
    summary: dict = field(default_factory=dict, repr=False)

    def headline(self) -> str:
        return "\n".join(c.text() for c in self.contrasts)


def _logprobs(models: list[LoadedModel], prompts, progress: Progress) -> list[np.ndarray]:
    texts = [p.text for p in prompts]
    out = []
    for m in models:
        progress.note(f"next-token log-probs of {m.name} on {len(texts)} prompts")
        out.append(next_token_logprobs(m, texts).numpy())
    return out


def _top_bottom(tables: dict, merge: str, prompt: str, lex: Lexicon) -> tuple[pd.DataFrame, str]:
    """The strings of the top/bottom table and a sentence saying which they are.

    A prompt key: every joined string (unmerged) with its MWLR for that prompt (the paper's
    Table 1); ``all`` (or a key that is not among the prompts): word-like strings with MWLR and
    log-ratio averaged over every prompt under ``merge``.
    """
    unmerged = tables["none"]
    if prompt != "all" and prompt in set(unmerged["prompt_key"]):
        rows = unmerged[unmerged["prompt_key"] == prompt][["response", "mwlr", "log_ratio"]]
        how = f"every joined string (unmerged, the paper's Table 1) for prompt {prompt}"
        return join_categories(rows, lex).rename(columns={"response": "word"}), how
    by_word = join_categories(
        tables[merge].groupby("response", as_index=False)[["mwlr", "log_ratio"]].mean(), lex
    )
    by_word = by_word[by_word["response"].map(lambda s: bool(WORDLIKE.match(merge_key(s))))]
    how = f"word-like strings, MWLR averaged over every prompt (merge {merge})"
    if prompt != "all":
        how += f"; prompt {prompt} is not among the prompts"
    return by_word.rename(columns={"response": "word"}), how


def _figures(
    out: Path, by_word, means, names: tuple[str, str], pair: CategoryPair, top_k: int, how: str
) -> list[Path]:
    from analyses.figures import stats as figs

    m1, m2 = names
    files = figs.top_bottom_table(
        by_word, out / "top_bottom", k=top_k, value="mwlr",
        title=f"Implicit reward (MWLR) of {how}:\ntop = favoured by {m2}, bottom = by {m1}",
    )  # fmt: skip
    lex_words = means[(means["framing"] == "all")].assign(abs=lambda d: d["mwlr"].abs())
    chosen = (
        lex_words.sort_values("abs", ascending=False).groupby("category").head(8)["word"].tolist()
    )
    pair_rows = means[(means["framing"] != "all") & means["word"].isin(chosen)].assign(
        pair=lambda d: d["framing"] + " prompts"
    )
    files += figs.mwlr_lollipop(
        pair_rows.assign(word=pair_rows["word"] + " (" + pair_rows["category"].str[:4] + ")"),
        out / "mwlr_lollipop",
        title=f"MWLR of {m2} over {m1}: largest lexicon words",
    )
    files += figs.split_violins(
        means[means["framing"] != "all"].assign(
            model=lambda d: d["category"], category="lexicon words"
        ),
        out / "log_ratio_by_category",
        models=list(pair),
        value="log_ratio",
        ylabel=f"log q - log p per word, nats (> 0: favoured by {m2})",
        invert=False,
        title=f"Log-ratio {m2} / {m1} by category (left: {pair.first}, right: {pair.second})",
    )
    return files


def run_implicit_reward(
    settings: ImplicitRewardSettings, *, progress: Progress | None = None
) -> ImplicitRewardRun:
    """Implicit reward (MWLR) of MODEL-2 over MODEL-1 on next-token distributions, with statistics."""
    progress = progress or NoProgress()
    return in_run_folder(
        settings.out, settings.overwrite, lambda work: _implicit_reward(settings, work, progress)
    )


def _implicit_reward(s: ImplicitRewardSettings, out: Path, progress: Progress) -> ImplicitRewardRun:
    prompt_list = load_prompts(s.prompts, encoding=s.encoding)
    lex = load_lexicon(s.lexicon, progress=progress, encoding=s.encoding)
    if not s.keep_pronouns:
        lex = lex.drop_pronouns()
    loaded = []
    for name in (s.model_1, s.model_2):
        progress.note(f"loading {name}")
        loaded.append(load_model(ModelSpec(name, kind="lm", device=s.device)))
    m1, m2 = loaded
    logprobs = _logprobs(loaded, prompt_list, progress)
    strings = [decoded_vocabulary(m.tokenizer, lp.shape[1]) for m, lp in zip(loaded, logprobs)]
    join = VocabularyJoin.build(strings[0], strings[1])
    progress.note(f"joining vocabularies ({len(join.strings)} shared strings) and writing tables")
    tables = {
        mode: joined_table(prompt_list, (strings[0], strings[1]), (logprobs[0], logprobs[1]), mode, join)
        for mode in dict.fromkeys([s.merge, *MERGE_MODES])
    }  # fmt: skip
    full = join_categories(tables["none"], lex)
    small = {c: "float32" for c in ("logp", "logq", "log_ratio", "mwlr")}
    files = [out / "implicit_reward.parquet"]
    with atomic_path(files[0]) as tmp:
        full.astype(small).to_parquet(tmp, index=False, compression="zstd")

    progress.note(f"{s.categories.label}: permutation tests and bootstrap")
    means = {m: lexicon_word_means(t, lex, ("mwlr", "log_ratio")) for m, t in tables.items()}
    resampling = dict(n_permutations=s.permutations, n_bootstrap=s.bootstrap, seed=s.seed)
    contrasts = {
        m: category_contrasts(means[m], s.categories, "mwlr", **resampling) for m in tables
    }
    ratio = category_contrasts(means[s.merge], s.categories, "log_ratio", **resampling)
    primary_means = means[s.merge]
    files.append(write_table(primary_means, out / "word_means.csv"))
    rows = [c.row(by="framing") | {"merge": m} for m, cs in contrasts.items() for c in cs]
    rows += [c.row(by="framing") | {"merge": s.merge} for c in ratio]
    files.append(write_table(pd.DataFrame(rows), out / "comparison.csv"))

    by_word, table_how = _top_bottom(tables, s.merge, s.table_prompt, lex)
    if not s.no_figures:
        files += _figures(out, by_word, primary_means, (m1.name, m2.name), s.categories,
                          s.top_k, table_how)  # fmt: skip
    else:
        files.append(
            write_table(by_word.sort_values("mwlr", ascending=False), out / "top_bottom.csv")
        )

    progress.note("Stage 2 on both models' log-probs of the lexicon words")
    prov = provenance(
        lexicon=lex, seed=s.seed, models=[m.provenance() for m in loaded], prompts=s.prompts,
        merge=s.merge, drop_pronouns=not s.keep_pronouns, n_permutations=s.permutations,
        n_bootstrap=s.bootstrap, table_prompt=s.table_prompt, stage2_match=s.stage2_match,
    )  # fmt: skip
    stage2_dir = out / "stage2"
    lm_scores = pd.concat(
        [lexicon_logprob_scores(m, prompt_list, lp, lex, s.stage2_match)
         for m, lp in zip(loaded, logprobs)],
        ignore_index=True,
    )  # fmt: skip
    files.append(write_score_table(lm_scores, stage2_dir / "lm_scores.parquet", prov))
    s2 = stage2(lm_scores, lex, provenance=prov, n_bootstrap=s.bootstrap, seed=s.seed,
                word_match=s.stage2_match)  # fmt: skip
    files += write_stage2(s2, stage2_dir)
    if not s.no_figures:
        from analyses.figures import stats as figs

        files += figs.split_violins(
            s2.median_ranks, stage2_dir / "split_violins", models=[m1.name, m2.name],
            title=f"Median rank of lexicon words by log-prob: {m1.name} (left) | {m2.name} (right)",
        )  # fmt: skip
    summary = {
        "model_1": m1.name,
        "model_2": m2.name,
        "definition": "MWLR(y) = 0.5 (p(y) + q(y)) (log q(y) - log p(y)); p = model_1, q = model_2",
        "merge_definition": {
            "none": "decoded strings as they are (empty string dropped)",
            "mean": "mean of the case/whitespace variants' MWLR values (the paper's Fig 3)",
            "sum": "MWLR of the variants' summed probabilities",
        },
        "contrast": s.categories.label,
        "merge": s.merge,
        "n_prompts": len(prompt_list),
        "n_joined_strings_per_prompt": int(full.groupby("prompt_key").size().median()),
        "comparison": [c.row(by="framing") for c in contrasts[s.merge]],
        "comparison_log_ratio": [c.row(by="framing") for c in ratio],
        "comparison_other_merges": {
            m: [c.row(by="framing") for c in cs] for m, cs in contrasts.items() if m != s.merge
        },
        "stage2": s2.summary(),
        "top_bottom": table_how,
        "top": by_word.nlargest(s.top_k, "mwlr")[["word", "mwlr", "category"]].to_dict("records"),
        "bottom": by_word.nsmallest(s.top_k, "mwlr")[["word", "mwlr", "category"]].to_dict(
            "records"
        ),
        "provenance": prov,
    }
    files.append(write_json(summary, out / "summary.json"))
    return ImplicitRewardRun(
        out, tuple(files), prov, contrasts=contrasts[s.merge] + ratio, summary=summary
    )
