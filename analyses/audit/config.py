"""Every setting of an audit, in one validated dataclass, from defaults, a YAML file and the CLI.

``AuditConfig`` holds every setting (its fields are also the YAML keys; ``-`` and ``_`` are the
same in keys). Values are resolved in this order, later wins: the defaults, the ``quick`` preset
(when ``quick`` is set), the YAML ``--config`` file, then the options typed on the command line.
Unknown YAML keys and values of the wrong kind are refused with one ``error:`` line.

``cli_twin(AuditConfig)`` builds the command's settings dataclass: the same fields with the same
options, each defaulting to ``None`` ("not given"), plus ``--config``; its ``resolve()`` returns
the ``AuditConfig``. So the field list exists once and a config file can be overridden by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analyses.runs.common import ModelLoading
from analyses.runs.options import Opt, cli_options, comma_list, option
from analyses.stats.contrast import CategoryPair
from interp.errors import UserError
from interp.models.placement import check_device

STAGES = (
    "rm-preference",
    "base-preference",
    "implicit-reward",
    "probes",
    "value-lens",
    "patching",
    "token-sweep",
)
PATCH_SITES = ("resid_pre", "attn_out", "mlp_out", "resid_post")


def _sites(text) -> tuple[str, ...] | None:
    sites = comma_list(text)
    bad = [s for s in sites or () if s not in PATCH_SITES]
    if bad:
        raise UserError(
            f"--patch-sites: unknown site(s) {', '.join(bad)}; use {', '.join(PATCH_SITES)}"
        )
    return sites


def _stages(text) -> tuple[str, ...] | None:
    stages = comma_list(text)
    bad = [s for s in stages or () if s not in STAGES]
    if bad:
        raise UserError(f"--stages: unknown stage(s) {', '.join(bad)}; stages: {', '.join(STAGES)}")
    return stages


@dataclass(frozen=True, kw_only=True)
class AuditConfig(ModelLoading):
    """Every setting of ``audit`` (see ``analyses.audit.config``); how the models load
    (``--trust-remote-code``, ``--device-map``, ``--max-memory``) is shared with every command."""

    rm: str = option(
        "", "--rm", help="Reward model: embedded name, HF id, local folder or train-rm checkpoint."
    )
    base: str = option(
        "",
        "--base",
        help="The base model the RM was fine-tuned from (same architecture and tokenizer).",
    )
    out: Path = option(
        Path("audit-out"), "--out", kind="path", help="Output folder (one audit; rerun to resume)."
    )
    rm_label: str | None = option(
        None,
        "--rm-label",
        help="How the report names the RM [its name, or its folder's last two parts].",
    )
    base_label: str | None = option(None, "--base-label", help="How the report names the base.")
    rm_revision: str | None = option(None, "--rm-revision", help="RM revision (HF ids).")
    base_revision: str | None = option(None, "--base-revision", help="Base revision (HF ids).")
    rm_random_head: int | None = option(
        None,
        "--rm-random-head",
        kind="int",
        metavar="SEED",
        help="Give an RM checkpoint without a trained score head a head seeded with SEED (a caveat).",
    )
    lexicon: str = option(
        "big2",
        "--lexicon",
        help="Words with categories: a named lexicon, a lexicon file or a CSV response,category.",
    )
    keep_pronouns: bool = option(
        False, "--keep-pronouns", kind="flag", help="Keep the Big Two pronoun entries."
    )
    words_per_category: int | None = option(
        None,
        "--words-per-category",
        kind="int",
        low=2,
        metavar="N",
        help="Keep N words of each category, spread evenly over the lexicon's order [all].",
    )
    prompts: str = option(
        "paper54", "--prompts", help="Prompt set (paper54) or a YAML/JSON/text file."
    )
    prompt_keys: tuple[str, ...] | None = option(
        None, "--prompt-keys", parse=comma_list, help="Comma-separated prompt keys to keep [all]."
    )
    max_prompts: int | None = option(
        None,
        "--max-prompts",
        kind="int",
        low=1,
        metavar="N",
        help="Keep N prompts spread evenly over the framings [all].",
    )
    gap: CategoryPair = option(
        CategoryPair("Agency", "Communion"),
        "--gap",
        metavar="A,B",
        parse=CategoryPair.parse,
        help="The category contrast A - B read everywhere.",
    )
    versus: str | None = option(
        None,
        "--versus",
        metavar="LM",
        help="Stage 3: implicit reward (MWLR) of the base over this second LM [skipped].",
    )
    internal_prompts: int = option(
        4,
        "--internal-prompts",
        kind="int",
        low=1,
        help="Prompts (spread over the framings) for activations, probes and the value lens.",
    )
    patch_prompts: int = option(
        2, "--patch-prompts", kind="int", low=1, help="Prompts for the patching sweeps."
    )
    patch_words_per_category: int | None = option(
        24,
        "--patch-words-per-category",
        kind="int",
        low=2,
        metavar="N",
        help="Words of each category in the patching sweeps (spread evenly; 0 or more than "
        "there are: all).",
    )
    probe_folds: int = option(
        5, "--probe-folds", kind="int", low=2, help="Word-grouped CV folds of the probes."
    )
    probe_controls: int = option(
        1, "--probe-controls", kind="int", low=1, help="Shuffled-label control runs."
    )
    patch_sites: tuple[str, ...] = option(
        ("resid_pre", "attn_out", "mlp_out"),
        "--patch-sites",
        parse=_sites,
        metavar="SITES",
        help="Sites of the per-layer patching sweep.",
    )
    patch_layers: str = option(
        "all", "--patch-layers", help="Layers of the sweep: all | 0,5,10 | 0:30:2."
    )
    position_layers: int = option(
        3,
        "--position-layers",
        kind="int",
        low=1,
        help="Layers where the effect is, for the layer x position sweep.",
    )
    position_last: int = option(
        5,
        "--position-last",
        kind="int",
        low=1,
        help="Last K token positions of the layer x position sweep.",
    )
    token_sweep: bool = option(
        False,
        "--token-sweep",
        kind="flag",
        help="Stage 7: score every vocabulary token as a one-token response.",
    )
    token_sweep_prompts: int = option(
        1, "--token-sweep-prompts", kind="int", low=1, help="Prompts of the token sweep."
    )
    top_k: int = option(20, "--top-k", kind="int", low=1, help="Rows of top/bottom tables.")
    stages: tuple[str, ...] = option(
        STAGES,
        "--stages",
        parse=_stages,
        metavar="NAMES",
        help="Stages to run (implicit-reward also needs --versus, token-sweep --token-sweep).",
    )
    permutations: int = option(
        2000,
        "--permutations",
        kind="int",
        low=1,
        help="Permutation (and sign-flip) draws per test.",
    )
    bootstrap: int = option(
        1000, "--bootstrap", kind="int", low=1, help="Bootstrap resamples per interval."
    )
    seed: int = option(0, "--seed", kind="int", help="Seed of every random draw.")
    device: str | None = option(None, "--device", check=check_device, help="cpu, cuda ... [auto].")
    quick: bool = option(
        False,
        "--quick",
        kind="flag",
        help="A first look: 2 prompts, 12 words per category, fewer resamples.",
    )

    def validate(self) -> None:
        super().validate()  # every field against its declaration, and the model-loading rules
        if not self.rm or not self.base:
            raise UserError("audit needs --rm and --base (on the command line or in --config)")

    def record(self) -> dict:
        """The resolved settings as JSON-ready data (stored with every output)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, CategoryPair):
                value = [value.first, value.second]
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def enabled(self, stage: str) -> bool:
        """Whether ``stage`` runs (see ``skip_reason``)."""
        return self.skip_reason(stage) is None

    def skip_reason(self, stage: str) -> str | None:
        """Why ``stage`` does not run, or None when it does."""
        if stage not in self.stages:
            return "not run (not among --stages)"
        if stage == "implicit-reward" and not self.versus:
            return "not run (give --versus LM to run it)"
        if stage == "token-sweep" and not self.token_sweep:
            return "not run (give --token-sweep to run it)"
        if stage in ("value-lens", "patching") and self.rm_random_head is not None:
            return "not run: the value lens and patching read the RM's own trained score head"
        return None


QUICK: dict[str, Any] = {
    "max_prompts": 2,
    "internal_prompts": 2,
    "patch_prompts": 1,
    "words_per_category": 12,
    "probe_folds": 3,
    "permutations": 1000,
    "bootstrap": 300,
    "position_layers": 2,
    "position_last": 4,
    "top_k": 10,
}
"""What ``--quick`` changes (a YAML file or an option still wins)."""


def coerce(name: str, value: Any, opt: Opt) -> Any:
    """A YAML value for field ``name`` as the field's type, or ``UserError`` naming the key."""
    where = f"config key {name!r}"
    if value is None:
        return None
    if opt.parse is not None:
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else value
        if not isinstance(text, str):
            raise UserError(f"{where}: expected text or a list, got {value!r}")
        return opt.parse(text)
    kinds = {"int": int, "float": (int, float), "flag": bool}
    if opt.kind in kinds:
        if isinstance(value, bool) != (opt.kind == "flag") or not isinstance(
            value, kinds[opt.kind]
        ):
            raise UserError(
                f"{where}: expected {opt.kind.replace('flag', 'true/false')}, got {value!r}"
            )
        return float(value) if opt.kind == "float" else value
    if isinstance(value, dict | list | bool):
        raise UserError(f"{where}: expected text, got {value!r}")
    return Path(str(value)) if opt.kind == "path" else str(value)


def read_config_file(path: Path, config_type: type = AuditConfig) -> dict[str, Any]:
    """The YAML file's settings, typed; unknown keys are refused (listing the known ones)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"--config {path}: expected a mapping of setting: value")
    options = {name: opt for name, _d, opt in cli_options(config_type)}
    values = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in options:
            raise UserError(
                f"--config {path}: unknown key {key!r}; known keys: {', '.join(options)}"
            )
        values[name] = coerce(name, value, options[name])
    return values


def resolve(given: dict[str, Any], config_file: Path | None, config_type: type = AuditConfig):
    """``config_type`` from defaults < quick preset < ``config_file`` < ``given`` (typed options)."""
    from_file = read_config_file(config_file, config_type) if config_file else {}
    quick = given.get("quick", from_file.get("quick", False))
    merged = {**(QUICK if quick else {}), **from_file, **given}
    return config_type(**merged)


def cli_twin(config_type: type, name: str, doc: str) -> type:
    """The command's settings dataclass: ``config_type``'s options, each ``None`` unless typed,
    plus ``--config FILE``; ``resolve()`` gives the validated ``config_type``."""
    fields = [
        (
            "config",
            Path | None,
            option(None, "--config", kind="path", show_default=False,
                   help="YAML file of settings (keys as the options without --); options typed here win."),
        )
    ]  # fmt: skip
    for f in dataclasses.fields(config_type):
        opt = f.metadata["cli"]
        shown = (
            "" if f.default in (None, "", ()) or opt.kind == "flag" else _default_text(f.default)
        )
        twin = dataclasses.replace(opt, show_default=False, help=opt.help + shown)
        fields.append((f.name, Any, dataclasses.field(default=None, metadata={"cli": twin})))

    def resolve_self(self):
        given = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "config" and getattr(self, f.name) not in (None, False)
        }
        return resolve(given, self.config, config_type)

    cls = dataclasses.make_dataclass(
        name, fields, frozen=True, kw_only=True, namespace={"resolve": resolve_self}
    )
    cls.__doc__ = doc
    return cls


def _default_text(default: Any) -> str:
    if isinstance(default, CategoryPair):
        return f"  [default: {default.first},{default.second}]"
    if isinstance(default, tuple):
        return f"  [default: {','.join(map(str, default))}]"
    return f"  [default: {default}]"
