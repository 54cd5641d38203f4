"""An audit's report: its content from the ledger's results, then ``report.json`` and ``report.html``.

``build_report`` gathers, in the issue's order, the answer (``findings``), the pair and its
provenance (fingerprints, revisions, word and prompt hashes, tool version, seed, settings hash),
the stages' sections (``report_preference``, ``report_inside``; ``extra`` sections such as the
demo's controlled comparison go after them), every test (``evidence``) and the caveats
(``checks``). Only results and figure files enter it, never times or absolute output paths.
"""

from __future__ import annotations

from pathlib import Path

from analyses.audit.checks import caveats, rm_training_meta
from analyses.audit.config import AuditConfig
from analyses.audit.findings import answer
from analyses.audit.preference import AuditInputs
from analyses.audit.report_inside import inside_sections
from analyses.audit.report_preference import preference_sections
from analyses.report.content import Report, Section, TestEntry
from analyses.runs.common import short_name
from analyses.stats.preference import wilson_interval
from interp.provenance import settings_hash, tool_version


def _model(results: dict, keys: tuple[str, ...]) -> dict | None:
    for key in keys:
        if key in results and "model" in results[key]:
            return results[key]["model"]
    return None


def _training_record(meta: dict | None) -> dict | None:
    if meta is None:
        return None
    training = meta.get("training", {})
    data = training.get("data", {})
    config = training.get("config", {})
    acc, n = meta.get("heldout_accuracy"), meta.get("n_heldout")
    ci = wilson_interval(acc * n, int(n)) if acc is not None and n else None
    return {
        "checkpoint step": meta.get("step"),
        "held-out pairwise accuracy": acc,
        "its Wilson 95% CI": [round(ci.low, 4), round(ci.high, 4)] if ci else None,
        "held-out pairs": n,
        "head initialisation": training.get("head_init"),
        "method": config.get("method"),
        "LoRA rank / targets": f"{config.get('lora_rank')} / {', '.join(config.get('lora_targets', []))}"
        if config.get("method") == "lora" else None,
        "preference data": data.get("source"),
        "preference data sha256": data.get("sha256"),
        "pairs": data.get("n_pairs"),
        "labels": data.get("labels"),
    }  # fmt: skip


def report_settings(config: AuditConfig) -> dict:
    """The resolved settings without the output folder (two folders, one report)."""
    record = config.record()
    record.pop("out")
    return record


def pair_record(config: AuditConfig, results: dict, meta: dict | None) -> dict:
    """The pair and its provenance, as shown in the report's second section."""
    rm = _model(results, ("1-rm-preference/scores", "7-token-sweep/sweep")) or {"model": config.rm}
    base = _model(results, ("2-base-preference/scores",)) or {"model": config.base}
    words = results.get("0-inputs/words", {})
    prompts = results.get("0-inputs/prompts", {})
    lexicon = words.get("lexicon", {})
    record = {
        "reward model": {**rm, "trained by train-rm": _training_record(meta)},
        "base model": base,
        "words": {
            "lexicon": lexicon.get("name"), "version": lexicon.get("version"),
            "source": lexicon.get("source"), "lexicon digest": lexicon.get("digest"),
            "word file sha256": words.get("sha256"), "words per category": words.get("words_per_category"),
            "words in the patching sweeps": words.get("n_patch_words"),
            "Big Two pronouns dropped": words.get("pronouns_dropped"),
        },
        "prompts": {
            "source": prompts.get("source"),
            "keys": (prompts.get("all") or {}).get("keys"),
            "digest": (prompts.get("all") or {}).get("digest"),
            "internal stages": (prompts.get("internal") or {}).get("keys"),
            "patching": (prompts.get("patch") or {}).get("keys"),
        },
        "contrast": f"{config.gap.first} - {config.gap.second}",
        "versus LM (implicit reward)": config.versus,
        "tool": f"valuebias {tool_version()}",
        "seed": config.seed,
        "settings_hash": settings_hash(report_settings(config)),
        "resolved settings": "audit_config.yaml (beside this report)",
    }  # fmt: skip
    if record["reward model"]["trained by train-rm"] is None:
        record["reward model"].pop("trained by train-rm")
    return record


def build_report(config: AuditConfig, root: Path, inputs: AuditInputs, results: dict,
                 extra: tuple[Section, ...] = (), extra_tests: tuple[TestEntry, ...] = (),
                 title: str | None = None) -> Report:  # fmt: skip
    """The whole report of the audit in ``root`` (figures are written to ``root/figures``)."""
    names = (config.rm_label or short_name(config.rm), config.base_label or short_name(config.base))
    meta = rm_training_meta(config.rm)
    sentences, numbers = answer(results, (config.gap.first, config.gap.second), *names)
    sections, tests = preference_sections(root, config, inputs, results, names)
    figure_title = f"base: {names[1]}  ->  RM: {names[0]}"
    inside, inside_tests = inside_sections(root, config, inputs, results, figure_title)
    return Report(
        title=title or f"Audit: {names[0]} and its base {names[1]}",
        answer=sentences,
        key_numbers=numbers,
        pair=pair_record(config, results, meta),
        sections=tuple(sections + inside + list(extra)),
        tests=tuple(tests + inside_tests + list(extra_tests)),
        caveats=caveats(config, results, meta),
        config=report_settings(config),
    )
