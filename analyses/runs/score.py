"""``score``: RM rewards or LM log-probs for every (prompt, response) into a score table.

The output is a score table (``analyses.inputs.score_table``) with the detail columns
``n_tokens``, ``raw_token``, ``template`` and, when the responses come with categories,
``category``. Its provenance records the model, prompts, responses, shard, the candidate range,
the sweep's plan digest, the row count and a content digest.

Sweeps that survive and spread (``interp.sweeps``): the sweep is cut into content-addressed work
units (a prompt's candidates ``[start, stop)``); each finished unit is written atomically into
``OUT.parts/`` with a done marker, so a killed or interrupted run keeps what it finished and the
same command rerun computes only the rest. Any number of workers on the same plan cooperate:
the same command started several times, under ``torchrun``/``accelerate launch`` (each rank its
own device; rank 0 assembles), as a SLURM array, or with ``--executor ray --ray-address``. OUT is
assembled once every unit is done, atomically and under its output lock; until then it does not
exist (or is the previous complete table), so a partial output is never mistaken for a whole one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from analyses.inputs.prompts import load_prompts
from analyses.inputs.responses import load_responses
from analyses.inputs.score_table import SCORE_FORMATS, read_provenance, write_score_table_stream
from analyses.runs.common import ModelChoice, PromptChoice, RunResult
from analyses.runs.options import option, require
from interp.atomic import check_writable, output_format
from interp.errors import UserError
from interp.locks import OutputLock
from interp.models.identity import model_identity
from interp.progress import NoProgress, Progress
from interp.provenance import provenance, tool_version
from interp.score_units import ScoreUnits
from interp.scoring import Shard
from interp.sweeps.local import UnitsRun, run_units
from interp.sweeps.parts import Parts, parts_folder
from interp.sweeps.plan import SweepPlan, plan_units
from interp.sweeps.workers import Worker, worker_from_env

DEFAULT_UNIT_SIZE = 8192
EXECUTORS = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class ScoreSettings(ModelChoice, PromptChoice):
    """What to score, where to write it, and how the sweep is cut and spread."""

    responses: str = option(
        "", "--responses", required=True,
        help="vocab (every token as a one-token response), a word file (.txt/.csv) or a lexicon.",
    )  # fmt: skip
    out: Path = option(Path("scores.parquet"), "--out", kind="path", required=True,
                       help="Output score table (.parquet or .csv); rerun to resume into it.")  # fmt: skip
    batch_size: int | None = option(
        None, "--batch-size", kind="int", low=1, help="Candidates per forward pass [auto]."
    )
    shard: Shard = option(
        Shard(), "--shard", parse=Shard.parse, metavar="I/N", show_default=False,
        help="Score slice I of N equal slices of the responses (1-based), e.g. 2/8.",
    )  # fmt: skip
    unit_size: int = option(DEFAULT_UNIT_SIZE, "--unit-size", kind="int", low=1,
                            help="Candidates per work unit (what a rerun or a worker skips or takes).")  # fmt: skip
    executor: str = option("local", "--executor", kind="choice", choices=EXECUTORS,
                           help="local: this process (and any torchrun ranks, SLURM array tasks or "
                           "other processes on the same OUT); ray: Ray tasks on a cluster.")  # fmt: skip
    ray_address: str | None = option(None, "--ray-address", show_default=False,
                                     help="Ray cluster address (ray://host:10001, auto), or local "
                                     "for a private local instance.")  # fmt: skip
    ray_actors: int | None = option(None, "--ray-actors", kind="int", low=1, show_default=False,
                                    help="Ray actors [one per cluster GPU, else 2].")  # fmt: skip
    overwrite: bool = option(False, "--overwrite", kind="flag",
                             help="Discard unfinished units of a different sweep in OUT.parts.")  # fmt: skip
    lease_s: float = 600.0
    poll_s: float = 0.5

    def validate(self) -> None:
        super().validate()
        output_format(self.out, SCORE_FORMATS)
        require(self.executor != "ray" or bool(self.ray_address),
                "--executor ray needs --ray-address (an address, or local)")  # fmt: skip
        require(self.executor == "ray" or self.ray_address is None,
                "--ray-address is for --executor ray")  # fmt: skip


@dataclass(frozen=True)
class ScoreRun(RunResult):
    n_rows: int = 0
    model: str = ""
    units: UnitsRun | None = None
    n_units: int = 0
    assembled: bool = True

    def headline(self) -> str:
        work = ""
        if self.units is not None:
            work = (
                f" ({self.units.computed} of {self.n_units} work units computed here, "
                f"{self.units.already_done} already done"
                + (
                    f", {self.units.taken_over} taken over from dead workers"
                    if self.units.taken_over
                    else ""
                )
                + ")"
            )
        if not self.assembled:
            return f"finished my share of {self.out}{work}; rank 0 assembles it"
        return f"wrote {self.out}: {self.n_rows} rows scored by {self.model}{work}"


def prompts_digest(prompts) -> str:
    """sha256 (16 hex) of the prompts' keys and texts."""
    payload = json.dumps([(p.key, p.text) for p in prompts])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _complete(out: Path, plan: SweepPlan) -> bool:
    """OUT exists and was assembled from this very plan."""
    if not out.exists():
        return False
    try:
        return read_provenance(out).get("plan", {}).get("digest") == plan.digest
    except (UserError, ValueError, OSError):
        return False


def _agree_on_plan(plan: SweepPlan, worker: Worker) -> None:
    """Under torchrun (gloo or nccl), every rank must have planned the same sweep."""
    if "torchrun" not in worker.launcher:
        return
    import torch.distributed as dist

    if not dist.is_available():
        return
    started = False
    if not dist.is_initialized():
        dist.init_process_group("gloo")
        started = True
    try:
        digests: list = [None] * dist.get_world_size()
        dist.all_gather_object(digests, plan.digest)
    finally:
        if started:
            dist.destroy_process_group()
    if len(set(digests)) > 1:
        raise UserError("torchrun ranks planned different sweeps (different inputs per rank?)")


def _assemble(
    parts: Parts, plan: SweepPlan, out: Path, record: dict, categories
) -> tuple[Path, dict]:
    """Write OUT from every unit in plan order (one unit in memory at a time)."""
    markers = [parts.marker(u) for u in plan.units]
    fingerprints = {m.get("model", {}).get("fingerprint") for m in markers}
    if len(fingerprints) > 1:
        raise UserError(
            f"{parts.folder}: units were computed with different model weights (fingerprints "
            f"{', '.join(sorted(map(str, fingerprints)))}); rerun with --overwrite"
        )
    fitted = {k: v for m in markers for k, v in (m.get("fitted_rows") or {}).items()}
    record = {**record, "model": markers[0].get("model"), "fitted_rows_after_oom": fitted}
    joined = None
    if len(categories):
        joined = categories.groupby("response")["category"].agg(lambda c: "|".join(sorted(set(c))))

    def frames():
        for unit in plan.units:
            frame = parts.read(unit)
            if joined is not None:
                frame["category"] = frame["response"].map(joined).fillna("")
            yield frame

    path = write_score_table_stream(frames(), out, record)
    parts.remove()
    return path, read_provenance(path)


def _worker_spec(settings: ScoreSettings, worker: Worker):
    spec = settings.model_spec()
    if worker.local_rank is not None and spec.device is None and spec.device_map is None:
        import torch

        if torch.cuda.is_available():  # each rank takes its own device
            device = f"cuda:{worker.local_rank % torch.cuda.device_count()}"
            spec = dataclasses.replace(spec, device=device)
    return spec


def run_score(settings: ScoreSettings, *, progress: Progress | None = None) -> ScoreRun:
    """Score responses with an RM (rewards) or an LM (log-probs, nats) into a score table."""
    progress = progress or NoProgress()
    s = settings
    out = Path(s.out)
    check_writable(out)
    if not parts_folder(out).exists():  # no sweep of ours under way: a holder is a foreign writer
        OutputLock(out).refuse_if_held()
    prompts = load_prompts(s.prompts, s.prompt_keys, s.encoding)
    response_set = None
    if s.responses != "vocab":  # word files are read (or refused) before a model loads
        response_set = load_responses(s.responses, shard=s.shard, encoding=s.encoding)
    worker = worker_from_env()
    spec = _worker_spec(s, worker)
    ident = model_identity(spec, progress)
    if response_set is None:
        response_set = load_responses("vocab", ident, s.shard)
    if len(response_set.responses) == 0:
        raise UserError(f"no responses to score in {s.responses}")
    identity = {
        **ident.record, "responses": response_set.candidates(), "batch_size": s.batch_size,
        "unit_size": s.unit_size, "tool_version": tool_version(),
    }  # fmt: skip
    prompt_items = [{"key": p.key, "text": p.text, "framing": p.framing} for p in prompts]
    plan = plan_units(identity, prompt_items, len(response_set.responses), s.unit_size)
    record = provenance(
        seed=s.random_head,
        prompts={"source": s.prompts, "n": len(prompts), "digest": prompts_digest(prompts)},
        responses=response_set.description,
        shard=str(s.shard),
        candidates=response_set.candidates(),
        batch_size=s.batch_size,
        plan={"digest": plan.digest, "units": len(plan.units), "unit_size": s.unit_size},
    )
    if _complete(out, plan):
        done = read_provenance(out)
        return ScoreRun(out, (out,), done, n_rows=int(done.get("rows", 0)), model=s.model,
                        n_units=len(plan.units))  # fmt: skip
    parts = Parts(parts_folder(out), plan)
    existed = parts.open(overwrite=s.overwrite)
    _agree_on_plan(plan, worker)
    computer = ScoreUnits(
        spec, tuple(prompts), response_set.responses, s.batch_size, progress=progress
    )
    if s.executor == "ray":
        from interp.sweeps.ray_tasks import run_units_ray

        units = run_units_ray(plan, parts, computer.factory(), s.ray_address,
                              actors=s.ray_actors, lease_s=s.lease_s, progress=progress)  # fmt: skip
    else:
        if parts.n_done() < len(plan.units):
            try:  # load (and self-check) before any work starts: errors come first
                computer.model()
            except BaseException:
                if not existed and parts.n_done() == 0:
                    parts.remove()  # nothing was done: leave no trace of a refused run
                raise
        units = run_units(plan, parts, computer, worker, lease_s=s.lease_s, poll_s=s.poll_s,
                          finished_elsewhere=lambda: _complete(out, plan), progress=progress)  # fmt: skip
    if not worker.assembles:
        return ScoreRun(out, (), record, model=s.model, units=units, n_units=len(plan.units),
                        assembled=False)  # fmt: skip
    lock = OutputLock(out).acquire(wait_s=s.lease_s)
    try:
        if _complete(out, plan):  # another worker assembled it while we finished
            final = read_provenance(out)
        else:
            if parts.n_done() < len(plan.units):
                raise UserError(f"{parts.folder}: {parts.n_done()} of {len(plan.units)} units done")
            out, final = _assemble(parts, plan, out, record, response_set.categories)
    finally:
        lock.release()
    model = str((final.get("model") or {}).get("model", s.model))
    return ScoreRun(out, (out,), final, n_rows=int(final.get("rows", 0)), model=model,
                    units=units, n_units=len(plan.units))  # fmt: skip
