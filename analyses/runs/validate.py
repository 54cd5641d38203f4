"""``validate``: build model organisms with known answers, run the suite's methods on them, and
say how often each method places the difference where it is.

Organisms (``analyses.validation``): (1) an RM that differs from its base in one block (a
rank-one edit of the attention or MLP output projection), (2) an RM whose blocks ``k, k+1`` alone
learned an Agency (or Communion) preference, (3) RMs trained on identical neutral data from a
clean base and from a base fine-tuned to answer value questions with Agency words, (4) the
implicit reward between those two bases, and the demo pair; each family has a negative control.
The methods are the CLI's own run functions (``patch`` with ``--screen attribution``,
``train-rm``, ``cache-activations``, ``train-probes``, ``implicit-reward``) on the organisms; the
location rules (``analyses.validation.rules``, ``analyses.validation.inheritance_rules``) were
fixed before any result and are never tuned.

Files in ``--out``: ``validation.csv`` (one row per organism x seed x method; the summary line "N
of M located"), ``validation.json`` (provenance: settings and their hash, the plan, every
organism's build record with seeds and fingerprints, wall and CPU seconds), ``validation.html``,
``validation.png/.svg``, ``profiles.csv`` and ``organisms/<name>/`` (every command's own outputs).
``--quick`` runs the reduced set (one organism of each kind, a control in every family).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from analyses.runs.common import RunResult, write_json
from analyses.runs.options import Settings, comma_list, int_list, option, require
from analyses.validation.plan import Context, full_plan, quick_plan
from analyses.validation.report import validation_section, write_html
from analyses.validation.table import Row, rows_table, summary_line
from interp.atomic import atomic_path, check_writable
from interp.errors import UserError
from interp.models.loading import ModelSpec, load_model
from interp.models.zoo import EMBEDDED
from interp.progress import NoProgress, Progress
from interp.provenance import provenance, settings_hash

FAMILIES = ("block", "trained", "inherited", "demo")
FAMILY_ORDER = (
    "block-localised difference", "preference learned in known blocks", "inherited bias",
    "implicit-reward recovery", "demo pair",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ValidateSettings(Settings):
    """Which set of organisms, the model they are built from, resampling and CPU threads."""

    out: Path = option(Path("validation-out"), "--out", kind="path", required=True,
                       help="Output folder.")  # fmt: skip
    quick: bool = option(False, "--quick", kind="flag",
                         help="The reduced set (about 15 minutes on 2 CPU cores).")  # fmt: skip
    model: str = option("smollm2-135m-instruct", "--model", kind="choice",
                        choices=tuple(EMBEDDED), help="Embedded model the organisms are built from.")  # fmt: skip
    seeds: tuple[int, ...] = option((0, 1), "--seeds", parse=int_list("--seeds", "0,1"), metavar="S,T",
                                    help="Seeds of the full set. [default: 0,1]", show_default=False)  # fmt: skip
    only: tuple[str, ...] | None = option(
        None, "--only", parse=comma_list, metavar="FAMILIES", show_default=False,
        help=f"Run only these families ({', '.join(FAMILIES)}).",
    )  # fmt: skip
    permutations: int = option(2000, "--permutations", kind="int", low=1,
                               help="Permutation draws per test (raised where the sweep needs more).")  # fmt: skip
    bootstrap: int = option(1000, "--bootstrap", kind="int", low=1, help="Bootstrap resamples.")
    workers: int = option(2, "--workers", kind="int", low=1,
                          help="Organisms built at once, each in its own process.")  # fmt: skip
    threads: int = option(1, "--threads", kind="int", low=1,
                          help="CPU threads for torch in each worker (1 is fastest when other "
                          "work shares the cores).")  # fmt: skip
    keep_models: bool = option(False, "--keep-models", kind="flag",
                               help="Keep the organisms' model folders (about 0.5 GB each).")  # fmt: skip
    demo_rm: str | None = option(None, "--demo-rm", show_default=False,
                                 help="An RM trained from --model to use as the demo pair "
                                 "(default: the full set trains one with the demo's settings).")  # fmt: skip

    def validate(self) -> None:
        super().validate()
        require(bool(self.seeds), "--seeds: give at least one seed")
        bad = sorted(set(self.only or ()) - set(FAMILIES))
        require(not bad, f"--only: unknown families {bad}; use {', '.join(FAMILIES)}")


@dataclass(frozen=True)
class ValidateRun(RunResult):
    table: pd.DataFrame | None = field(default=None, repr=False)
    summary: str = ""

    def headline(self) -> str:
        lines = [self.summary]
        misses = self.table[~self.table["agree"]] if self.table is not None else pd.DataFrame()
        for r in misses.itertuples(index=False):
            lines.append(f"miss: {r.organism} (seed {r.seed}) {r.method}: expected {r.expected}, "
                         f"found {r.found}")  # fmt: skip
        lines.append(f"table: {self.out / 'validation.csv'}")
        return "\n".join(lines)


_CONTEXTS: dict[tuple, Context] = {}


def _context(settings: ValidateSettings, progress: Progress | None = None) -> Context:
    """The shared context of this process (the base model loaded once per process)."""
    import torch

    from analyses.validation.materials import write_eval_prompts, write_words

    key = (settings.model, str(settings.out))
    if key not in _CONTEXTS:
        torch.set_num_threads(settings.threads)
        out = Path(settings.out)
        base = load_model(ModelSpec(settings.model, kind="lm", dtype="float32"))
        _CONTEXTS[key] = Context(
            settings.model, base, out, write_words(out / "organisms" / "words.csv"),
            write_eval_prompts(out / "organisms" / "eval_prompts.json"), settings.permutations,
            settings.bootstrap, settings.keep_models, progress or NoProgress(),
        )  # fmt: skip
    return _CONTEXTS[key]


def run_job(settings: ValidateSettings, family: str, spec) -> tuple:
    """Build one organism and run its methods: ``(rows, record, profile or None, removed)``."""
    from analyses.validation.block import run_block_organism
    from analyses.validation.demo_pair import run_demo_pair
    from analyses.validation.inherited import run_inherited
    from analyses.validation.trained import run_trained_organism

    ctx = _context(settings)
    before = len(ctx.removed)
    if family == "block":
        result = run_block_organism(spec, ctx)
    elif family == "trained":
        result = run_trained_organism(spec, ctx)
    elif family == "inherited":
        result = (*run_inherited(spec, ctx), None)
    else:
        result = run_demo_pair(ctx, settings.demo_rm)
    return (*result, ctx.removed[before:])


def _jobs(settings: ValidateSettings, n_layers: int):
    plan = quick_plan(n_layers) if settings.quick else full_plan(n_layers, settings.seeds)
    families = set(settings.only or FAMILIES)
    jobs = []
    if "inherited" in families:  # the longest first, so workers finish together
        jobs += [("inherited", spec) for spec in plan.inherited]
    if "trained" in families:
        jobs += [("trained", spec) for spec in plan.trained]
    if "demo" in families and (plan.demo or settings.demo_rm):
        jobs.append(("demo", None))
    if "block" in families:
        jobs += [("block", spec) for spec in plan.blocks]
    return plan, jobs


def _describe(family: str, spec) -> str:
    if spec is None:
        return family
    return f"{getattr(spec, 'name', family)} (seed {spec.seed})"


def _write(out: Path, rows: list[Row], profiles: list[pd.DataFrame]) -> tuple[pd.DataFrame, list]:
    from analyses.figures.validation import validation_figure

    table = rows_table(rows)
    order = {name: i for i, name in enumerate(FAMILY_ORDER)}
    table = table.assign(_rank=table["family"].map(order).fillna(len(order)))
    table = table.sort_values(["_rank", "control", "organism", "seed"], kind="stable")
    table = table.drop(columns="_rank").reset_index(drop=True)
    with atomic_path(out / "validation.csv") as tmp:
        table.to_csv(tmp, index=False)
    profile = pd.concat(profiles, ignore_index=True) if profiles else pd.DataFrame(
        columns=["organism", "layer", "normalised_effect", "expected_block"])  # fmt: skip
    with atomic_path(out / "profiles.csv") as tmp:
        profile.to_csv(tmp, index=False)
    files = [out / "validation.csv", out / "profiles.csv"]
    files += validation_figure(table, profile, out / "validation", summary_line(table))
    files.append(write_html(validation_section(out), out / "validation.html"))
    return table, files


def run_validate(settings: ValidateSettings, *, progress: Progress | None = None) -> ValidateRun:
    """Build the organisms, run the suite's methods on them, write the validation table."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    progress = progress or NoProgress()
    s = settings
    out = Path(s.out)
    check_writable(out, folder=True)
    threads_before = torch.get_num_threads()
    t0, c0 = time.perf_counter(), time.process_time()
    rows: list[Row] = []
    profiles: list[pd.DataFrame] = []
    records: list[dict] = []
    removed: list[str] = []
    files: list = []
    try:
        ctx = _context(s, progress)
        plan, jobs = _jobs(s, ctx.base.n_layers)
        if not jobs:
            raise UserError("validate: nothing to run (check --only)")
        progress.start(len(jobs), f"validation: {len(jobs)} organism runs, {s.workers} at once")

        def collect(result) -> None:
            nonlocal files
            rows.extend(result[0])
            records.append(result[1])
            if result[2] is not None:
                profiles.append(result[2])
            removed.extend(result[3])
            _, files = _write(out, rows, profiles)
            progress.advance()

        if s.workers == 1:
            for family, spec in jobs:
                progress.note(f"organism {_describe(family, spec)}")
                collect(run_job(s, family, spec))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(s.workers, mp_context=context) as pool:
                futures = {pool.submit(run_job, s, f, spec): (f, spec) for f, spec in jobs}
                for future in as_completed(futures):
                    progress.note(f"finished {_describe(*futures[future])}")
                    collect(future.result())
        progress.close()
        table = rows_table(rows)
        record = provenance(
            seed=s.seeds[0], settings=asdict(s) | {"out": str(s.out)},
            settings_hash=settings_hash(asdict(s) | {"out": str(s.out)}), model=ctx.base.provenance(),
            plan=plan.describe(), organisms=records, removed_model_folders=removed,
            summary=summary_line(table), wall_s=round(time.perf_counter() - t0, 1),
            cpu_s_main_process=round(time.process_time() - c0, 1),
            cpu_s_organisms=round(sum(r.get("cpu_s", 0) for r in records), 1),
            torch_threads=s.threads, workers=s.workers,
        )  # fmt: skip
        files.append(write_json(record, out / "validation.json"))
    finally:
        torch.set_num_threads(threads_before)
        _CONTEXTS.pop((s.model, str(s.out)), None)
    return ValidateRun(out, tuple(files), record, table=table, summary=summary_line(table))
