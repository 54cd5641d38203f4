"""valuebias command line: every command parses its options and calls one ``analyses.runs`` function.

Each command is built from its run's settings dataclass (``analyses.runs.options``): the fields
declare the options, their defaults, help, allowed values and ranges, so nothing is chosen here.
The command builds the settings, calls the run with a progress display and prints the result's
``headline()``. Bad input (a ``UserError`` from the library, or a usage error found by click) is
one line starting with ``error:`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from inspect import cleandoc
from pathlib import Path

import click

from analyses.runs import (
    audit,
    cache_activations,
    compare_probes,
    demo,
    implicit_reward,
    import_scores,
    inspect,
    lexicons,
    merge_shards,
    models,
    patch,
    score,
    stats,
    train_probes,
    train_rm,
    training_dynamics,
    validate,
    value_lens,
)
from analyses.runs.options import Opt, cli_options
from interp.errors import UserError


class TqdmProgress:
    """Progress bars on stderr for library calls (implements ``interp.progress.Progress``)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled  # bars: terminals only
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
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


class OneLineErrors(click.Group):
    """A group whose usage errors print as one ``error:`` line (exit 2) instead of click's usage
    block; ``--help`` and normal exits behave as usual."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)


def _click_type(opt: Opt):
    if opt.kind in ("int", "float"):
        low, open_low = (opt.above, True) if opt.above is not None else (opt.low, False)
        ranged = low is not None or opt.high is not None
        if opt.kind == "int":
            return click.IntRange(low, opt.high, min_open=open_low) if ranged else click.INT
        return click.FloatRange(low, opt.high, min_open=open_low) if ranged else click.FLOAT
    if opt.kind == "path":
        return click.Path(path_type=Path)
    if opt.kind == "choice":
        return click.Choice(opt.choices)
    return click.STRING


def _param(name: str, default, opt: Opt) -> click.Parameter:
    if opt.argument:
        return click.Argument(
            [name], nargs=opt.nargs, required=opt.required, type=_click_type(opt),
            metavar=opt.flags[0],
        )  # fmt: skip
    if opt.kind == "flag":
        return click.Option([*opt.flags, name], is_flag=True, default=False, help=opt.help)
    shown = opt.show_default and not opt.required and default not in (None, ())
    return click.Option(
        [*opt.flags, name],
        type=_click_type(opt),
        multiple=opt.multiple,
        required=opt.required,
        metavar=opt.metavar,
        help=opt.help + (f"  [default: {_shown(default)}]" if shown else ""),
    )


def _shown(default) -> str:
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(default)


def _settings_from(settings_type: type, values: dict):
    """The settings dataclass from what the user typed (untyped options keep the defaults)."""
    given = {}
    for name, _default, opt in cli_options(settings_type):
        value = values.get(name)
        if value is None or (opt.multiple and not value) or (opt.kind == "flag" and not value):
            continue
        if opt.argument and opt.nargs == -1:
            value = tuple(value)
            if not value and not opt.required:
                continue
        given[name] = opt.parse(value) if opt.parse is not None else value
    return settings_type(**given)


FILE_FAULTS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


def fault_message(err: OSError) -> str | None:
    """One line for a file-system fault (disk full, permissions), or None for other errors."""
    if err.errno not in FILE_FAULTS:
        return None
    where = f" ({err.filename})" if err.filename else ""
    return (
        f"{FILE_FAULTS[err.errno]}{where}; nothing half-written was left under an output name. "
        "Fix it and rerun the same command (completed work is kept where the command resumes)"
    )


def _friendly(func: Callable) -> Callable:
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except OSError as err:
            message = fault_message(err)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except EOFError:  # click would report it as "Aborted!"
            click.echo("error: an input ended early (a truncated file?)", err=True)
            sys.exit(2)

    return wrapper


def command(group: click.Group, name: str, settings_type: type, run: Callable) -> None:
    """Add command ``name`` to ``group``: options from ``settings_type``, help from ``run``."""

    def callback(**values):
        settings = _settings_from(settings_type, values)
        progress = TqdmProgress()
        try:
            result = run(settings, progress=progress)
        finally:
            progress.close()  # before any error line, so it stands alone
        click.echo(result.headline())

    options = cli_options(settings_type)  # inherited groups first: show required ones first
    options.sort(key=lambda item: not (item[2].required or item[2].argument))
    params = [_param(n, d, o) for n, d, o in options]
    help_text = cleandoc(run.__doc__ or "").split("\n\n")[0]
    about = cleandoc(settings_type.__doc__ or "")  # "Name(...)" when undocumented
    if about and not about.startswith(f"{settings_type.__name__}(") and about != "(no settings)":
        help_text += "\n\n" + about
    group.add_command(
        click.Command(name, params=params, callback=_friendly(callback), help=help_text)
    )


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """valuebias: find where a reward model's value biases come from.

    Score reward models and language models on value-laden words, run the statistics of
    Christian et al. 2026, cache hidden activations, fit probes and patch activations between a
    base model and a reward model fine-tuned from it.
    """


@main.group("models")
def models_group() -> None:
    """Embedded offline models: list them and fetch them into the cache."""


@main.group("lexicons")
def lexicons_group() -> None:
    """Value lexicons: list the named sources, fetch them, show and expand one."""


for _group, _name, _settings, _run in (
    (models_group, "list", models.ModelsListSettings, models.run_models_list),
    (models_group, "fetch", models.ModelsFetchSettings, models.run_models_fetch),
    (main, "score", score.ScoreSettings, score.run_score),
    (main, "merge-shards", merge_shards.MergeShardsSettings, merge_shards.run_merge_shards),
    (lexicons_group, "list", lexicons.LexiconsListSettings, lexicons.run_lexicons_list),
    (lexicons_group, "fetch", lexicons.LexiconsFetchSettings, lexicons.run_lexicons_fetch),
    (lexicons_group, "show", lexicons.LexiconsShowSettings, lexicons.run_lexicons_show),
    (main, "import-scores", import_scores.ImportScoresSettings, import_scores.run_import_scores),
    (main, "stats", stats.StatsSettings, stats.run_stats),
    (main, "implicit-reward", implicit_reward.ImplicitRewardSettings, implicit_reward.run_implicit_reward),
    (main, "cache-activations", cache_activations.CacheActivationsSettings, cache_activations.run_cache_activations),
    (main, "inspect", inspect.InspectSettings, inspect.run_inspect),
    (main, "train-probes", train_probes.TrainProbesSettings, train_probes.run_train_probes),
    (main, "compare-probes", compare_probes.CompareProbesSettings, compare_probes.run_compare_probes),
    (main, "train-rm", train_rm.TrainRmSettings, train_rm.run_train_rm),
    (main, "training-dynamics", training_dynamics.TrainingDynamicsSettings, training_dynamics.run_training_dynamics),
    (main, "patch", patch.PatchSettings, patch.run_patch),
    (main, "value-lens", value_lens.ValueLensSettings, value_lens.run_value_lens),
    (main, "audit", audit.AuditSettings, audit.run_audit),
    (main, "demo", demo.DemoSettings, demo.run_demo),
    (main, "validate", validate.ValidateSettings, validate.run_validate),
):  # fmt: skip
    command(_group, _name, _settings, _run)


if __name__ == "__main__":
    main()
