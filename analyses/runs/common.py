"""What every run shares: the result type, settings groups reused by several commands, file helpers.

- ``RunResult``: the files a run wrote, its provenance, and ``headline()`` (the lines the CLI
  prints). Every ``analyses.runs`` function returns a subclass.
- Settings groups (keyword-only dataclasses to inherit from): ``ModelLoading`` (custom code,
  device map, memory limits: every command that loads a model), ``ModelChoice`` (one model and
  how to load it), ``TextInputs`` (the text encoding of input files), ``PromptChoice`` (prompt
  set and keys), ``Resampling`` (seed, permutations, bootstrap), ``WordContrastChoice``
  (categorised words and the contrast read on them).
- Outputs: ``output_file`` (a file output: format by extension, writable, locked while written)
  and ``interp.atomic.RunFolder`` for folder outputs (``in_run_folder``: a run built in its staging
  folder, returned with the paths it has once swapped in); ``write_table``/``write_json`` are atomic.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyses.runs.options import Settings, comma_list, option
from analyses.stats.contrast import CategoryPair
from interp.atomic import RunFolder, check_writable, output_format, write_json, write_table
from interp.errors import UserError
from interp.files import check_encoding
from interp.locks import OutputLock
from interp.models.loading import ModelSpec, check_revision
from interp.models.placement import check_device, check_dtype, parse_max_memory
from interp.models.presets import preset

__all__ = ["write_json", "write_table"]  # re-exported: the suite's atomic writers


@dataclass(frozen=True)
class RunResult:
    """A finished run: ``out`` (its folder or main file), every file written, provenance."""

    out: Path
    files: tuple[Path, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def headline(self) -> str:
        """Lines for a person: what was found, with the numbers that matter."""
        return f"wrote {len(self.files)} files to {self.out}"


@dataclass(frozen=True)
class TextRun(RunResult):
    """A run whose result is a report to read (``text``)."""

    text: str = ""

    def headline(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class ModelLoading(Settings):
    """How a model is loaded, shared by every command that loads one (score, cache-activations,
    patch, value-lens, train-rm, audit): custom code, and accelerate's placement of big models."""

    trust_remote_code: bool = option(
        False, "--trust-remote-code", kind="flag",
        help="Run the checkpoint's own model code (ArmoRM, QRM, URM ship theirs); the files and "
        "revision that will run are printed first. Off by default; never implied by a preset.",
    )  # fmt: skip
    device_map: str | None = option(
        None, "--device-map", show_default=False,
        help="Spread the model over devices with accelerate: auto, balanced, "
        "balanced_low_0, sequential.",
    )  # fmt: skip
    max_memory: tuple[tuple[str, str], ...] | None = option(
        None, "--max-memory", parse=parse_max_memory, metavar="DEV=SIZE,...", show_default=False,
        help="Memory per device for --device-map, e.g. 0=20GiB,1=20GiB,cpu=64GiB.",
    )  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if self.device_map is not None and self.device_map not in DEVICE_MAPS:
            raise UserError(f"--device-map {self.device_map!r}: use {', '.join(DEVICE_MAPS)}")
        if self.max_memory and self.device_map is None:
            raise UserError("--max-memory needs --device-map (e.g. --device-map auto)")

    def load_kwargs(self) -> dict[str, Any]:
        """``ModelSpec`` keywords for these choices."""
        return {
            "trust_remote_code": self.trust_remote_code,
            "device_map": self.device_map,
            "max_memory": self.max_memory,
        }


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


@dataclass(frozen=True, kw_only=True)
class ModelChoice(ModelLoading):
    """One model and how to load it."""

    model: str = option(
        "", "--model", required=True,
        help="Embedded name, reward-model preset (models list), Hugging Face id or local folder.",
    )  # fmt: skip
    kind: str | None = option(
        None, "--as", kind="choice", choices=("lm", "rm"), show_default=False,
        help="Load as a causal LM (log-probs) or a reward model (sequence classification, 1 "
        "label). [default: rm for a reward-model preset, else lm]",
    )  # fmt: skip
    revision: str | None = option(None, "--revision", help="Model revision (HF ids).")
    dtype: str | None = option(
        None, "--dtype", check=check_dtype,
        help="float32 | bfloat16 | float16 [float32 on CPU, bfloat16 on GPU].",
    )  # fmt: skip
    device: str | None = option(None, "--device", check=check_device,
                                help="cpu, cuda, cuda:1 ... [auto: GPU if any].")  # fmt: skip
    random_head: int | None = option(
        None, "--random-head", kind="int", low=0, metavar="SEED",
        help="With --as rm on a checkpoint without a trained score head: a head seeded with SEED.",
    )  # fmt: skip

    @property
    def model_kind(self) -> str:
        """``--as``, or its default (rm for a reward-model preset, else lm)."""
        return self.kind or ("rm" if preset(self.model) else "lm")

    def validate(self) -> None:
        super().validate()
        check_revision(self.model, self.revision)

    def model_spec(self) -> ModelSpec:
        return ModelSpec(
            self.model, self.model_kind, self.revision, self.dtype, self.device,
            self.random_head, **self.load_kwargs(),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TextInputs(Settings):
    """How input text files are decoded (UTF-8 unless a byte-order mark or ``--encoding`` says)."""

    encoding: str | None = option(
        None, "--encoding", check=check_encoding, show_default=False,
        help="Text encoding of the input files (e.g. latin-1) [UTF-8, or as a byte-order mark says].",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class PromptChoice(TextInputs):
    """Which prompts: a built-in set or a file, optionally narrowed to some keys."""

    prompts: str = option(
        "paper54",
        "--prompts",
        help="Built-in set (paper54: the paper's 54 prompts) or a YAML/JSON/text file.",
    )
    prompt_keys: tuple[str, ...] | None = option(
        None, "--prompt-keys", parse=comma_list, show_default=False,
        help="Comma-separated prompt keys to keep (in this order).",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Resampling(Settings):
    """Seed and resampling counts of the permutation tests and bootstrap intervals."""

    seed: int = option(0, "--seed", kind="int", low=0, help="Seed of every random draw.")
    permutations: int = option(
        10_000, "--permutations", kind="int", low=1, help="Permutation-test draws."
    )
    bootstrap: int = option(2000, "--bootstrap", kind="int", low=1, help="Bootstrap resamples.")


@dataclass(frozen=True, kw_only=True)
class Overwrite(Settings):
    """Whether a folder output may replace an earlier run (``interp.atomic.RunFolder``)."""

    overwrite: bool = option(
        False, "--overwrite", kind="flag",
        help="Replace an earlier run in OUT (never one that another process is writing).",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class WordContrastChoice(PromptChoice, Overwrite):
    """Words with categories under a set of prompts, and the category contrast read on them."""

    responses: str = option(
        "", "--responses", required=True,
        help="Words with categories: a lexicon (e.g. big2) or a CSV response,category.",
    )  # fmt: skip
    gap: CategoryPair = option(
        CategoryPair("Agency", "Communion"), "--gap", metavar="A,B", parse=CategoryPair.parse,
        help="The two categories of the gap A - B. [default: Agency,Communion]", show_default=False,
    )  # fmt: skip
    out: Path = option(Path("out"), "--out", kind="path", required=True, help="Output folder.")
    bootstrap: int = option(2000, "--bootstrap", kind="int", low=1, help="Bootstrap resamples.")
    seed: int = option(0, "--seed", kind="int", low=0, help="Seed of every random draw.")
    device: str | None = option(None, "--device", check=check_device, help="cpu, cuda ... [auto].")


@contextlib.contextmanager
def output_file(path: str | Path, formats: tuple[str, ...], what: str = "--out") -> Iterator[Path]:
    """A file output for the length of the ``with``: its format must be one of ``formats`` (by
    extension), its folder writable, and no other process may be writing it (``OutputLock``).
    Call it before loading any model, so a bad ``--out`` fails in a second."""
    path = Path(path)
    output_format(path, formats, what)
    check_writable(path)
    with OutputLock(path):
        yield path


def in_run_folder(out: str | Path, overwrite: bool, body: Callable[[Path], RunResult]):
    """``body(work)`` inside a ``RunFolder`` for ``out`` (staged, locked, swapped in whole when it
    returns); its result with ``out`` and ``files`` as they are once swapped in."""
    with RunFolder(out, overwrite=overwrite) as folder:
        run = body(folder.work)
    return dataclasses.replace(run, out=folder.out, files=tuple(map(folder.final, run.files)))


def short_name(name: str) -> str:
    """A model label for figures and headlines: a folder path becomes its last two parts."""
    parts = Path(name).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else name
