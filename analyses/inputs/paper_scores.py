"""The paper's released score files: wide CSVs (``response`` + one column per prompt key) into score tables.

The model id comes from the file name (``big2_rewards_<model>.csv``, ``MFD20_rewards_<model>.csv``),
the family from the paper's rule (an id containing "gemma", any case, is Gemma, else Llama) unless
overridden, the framing from the prompt key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from analyses.inputs.prompts import framing_of_key, paper_prompts
from analyses.inputs.score_table import normalise_score_table
from interp.errors import UserError
from interp.files import read_delimited

PAPER_FILE_PREFIXES: tuple[str, ...] = ("big2_rewards_", "MFD20_rewards_")


def family_from_model_id(model_id: str) -> str:
    """The paper's rule: ``Gemma`` when the id contains "gemma" (any case), else ``Llama``."""
    return "Gemma" if "gemma" in model_id.lower() else "Llama"


def model_id_from_paper_file(path: str | Path) -> str:
    """Model id from a paper file name: the part after ``big2_rewards_`` / ``MFD20_rewards_``."""
    stem = Path(path).stem
    for prefix in PAPER_FILE_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    raise UserError(
        f"cannot take a model id from {Path(path).name!r}: expected a name starting with "
        f"{' or '.join(PAPER_FILE_PREFIXES)}"
    )


def _default_prompt_texts() -> dict[str, str]:
    """Prompt texts of the paper's 54 prompts, by key."""
    return {p.key: p.text for p in paper_prompts()}


_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")


def import_paper_scores(
    files: Iterable[str | Path],
    family_overrides: Mapping[str, str] | None = None,
    prompt_texts: Mapping[str, str] | None = None,
    kind: str = "rm",
    encoding: str | None = None,
) -> pd.DataFrame:
    """Convert the paper's wide score CSVs into one long score table.

    Each file has a ``response`` column then one column per prompt key; the model id is taken
    from the file name (see ``model_id_from_paper_file``). ``family_overrides`` maps model id ->
    family and wins over the "gemma" rule. ``prompt_texts`` maps key -> text (default: the
    paper's 54 prompts; unknown keys get ""). All files must
    carry the same set of prompt keys, else ``UserError`` names the missing ones.

    Returns a frame with ``SCORE_COLUMNS`` and ``len(files) * n_responses * n_prompts`` rows.
    """
    files = [Path(f) for f in files]
    if not files:
        raise UserError("no score files given")
    overrides = dict(family_overrides or {})
    texts = dict(prompt_texts) if prompt_texts is not None else _default_prompt_texts()
    frames: list[pd.DataFrame] = []
    keysets: dict[str, set[str]] = {}
    for path in files:
        model = model_id_from_paper_file(path)
        wide = read_delimited(path, "score file", encoding)
        if "response" not in wide.columns:
            raise UserError(f"{path.name}: no 'response' column")
        keys = [c for c in wide.columns if c != "response"]
        if not keys:
            raise UserError(f"{path.name}: no prompt columns after 'response'")
        bad = [k for k in keys if not _KEY_RE.match(str(k))]
        if bad:
            raise UserError(f"{path.name}: column(s) {bad} do not look like prompt keys")
        if wide.empty:
            raise UserError(f"{path.name}: a header but no rows")
        empty = wide.index[wide["response"].str.strip() == ""]
        if len(empty):
            raise UserError(f"{path.name}: empty response in row(s) {[int(i) + 2 for i in empty]}")
        for key in keys:
            text = wide[key].str.strip()
            values = pd.to_numeric(text, errors="coerce")
            bad = values.isna() & (text != "") & ~text.str.lower().isin(["nan", "na"])
            if bad.any():
                row = int(bad.to_numpy().nonzero()[0][0])
                raise UserError(
                    f"{path.name}: column {key}, row {row + 2}: {wide[key].iloc[row]!r} is not a number"
                )
            wide[key] = values
        keysets[model] = set(keys)
        long = wide.melt(id_vars="response", var_name="prompt_key", value_name="score")
        if long["score"].isna().any():
            n = int(long["score"].isna().sum())
            raise UserError(f"{path.name}: {n} missing score(s)")
        long["model"] = model
        long["family"] = overrides.get(model, family_from_model_id(model))
        frames.append(long)
    unknown = sorted(set(overrides) - set(keysets))
    if unknown:
        raise UserError(f"--family names model(s) not among the files: {', '.join(unknown)}")
    all_keys = set().union(*keysets.values())
    for model, keys in keysets.items():
        if keys != all_keys:
            raise UserError(
                f"score file for {model} is missing prompt(s): {', '.join(sorted(all_keys - keys))}"
            )
    out = pd.concat(frames, ignore_index=True)
    out["kind"] = kind
    out["framing"] = out["prompt_key"].map(framing_of_key)
    out["prompt"] = out["prompt_key"].map(lambda k: texts.get(k, ""))
    out["token_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return normalise_score_table(out)
