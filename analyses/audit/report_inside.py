"""The report's sections for audit stages 4-7: the layerwise bias figure on one shared depth axis,
the layer x position heatmap, and the tables of probes, value lens, patching and the token sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.evidence import patch_tests
from analyses.audit.preference import AuditInputs
from analyses.audit.report_preference import ci_text
from analyses.report.content import Figure, Section, Table, TestEntry

S6 = "6. Patching"
INSIDE = "Inside the pair: where the preference is carried (stages 4-6)"


def probe_curves(results: dict) -> pd.DataFrame | None:
    """Tidy curves for the figure: both models' logistic probe accuracy, the base probe on the
    RM's activations, the direction cosine and the RM direction's cosine with the RM head."""
    rows = []
    for role, label in (("rm", "RM probe accuracy"), ("base", "base probe accuracy")):
        probes = results.get(f"4-probes/{role}-probes")
        for r in probes["layers"] if probes else []:
            if r["method"] == "logistic":
                rows.append({"layer": r["layer"], "series": label, "kind": "accuracy",
                             "value": r["accuracy"], "ci_low": r["accuracy_low"],
                             "ci_high": r["accuracy_high"]})  # fmt: skip
    compare = results.get("4-probes/compare")
    series = (("transfer_a_on_b_accuracy", "accuracy", "base probe on RM activations"),
              ("cosine", "cosine", "cos(base direction, RM direction)"),
              ("head_cosine_b", "cosine", "cos(RM direction, RM score head)"))  # fmt: skip
    for r in compare["layers"] if compare else []:
        if r["method"] != "logistic":
            continue
        for col, kind, label in series:
            if r.get(col) is not None:
                rows.append({"layer": r["layer"], "series": label, "kind": kind,
                             "value": r[col], "ci_low": None, "ci_high": None})  # fmt: skip
    if not rows:
        return None
    return pd.DataFrame(rows).astype({"ci_low": float, "ci_high": float})


def _lens(root: Path, results: dict) -> pd.DataFrame | None:
    lens = results.get("5-value-lens/lens")
    if lens:
        return pd.DataFrame(lens["gaps"])
    sweep_dir = root / "6-patching" / "sweep"
    if results.get("6-patching/sweep") and (sweep_dir / "value_lens_gap.csv").is_file():
        return pd.read_csv(sweep_dir / "value_lens_gap.csv")
    return None


def _probe_table(results: dict) -> Table | None:
    probes = [results.get(f"4-probes/{r}-probes") for r in ("rm", "base")]
    compare = results.get("4-probes/compare")
    if not all(probes):
        return None
    rm, base = ({r["layer"]: r for r in p["layers"] if r["method"] == "logistic"} for p in probes)
    cmp = {r["layer"]: r for r in (compare or {}).get("layers", []) if r["method"] == "logistic"}
    rows = []
    for layer in sorted(rm):
        c = cmp.get(layer, {})
        rows.append((layer, rm[layer]["accuracy"],
                     ci_text(rm[layer]["accuracy_low"], rm[layer]["accuracy_high"]),
                     rm[layer].get("control_accuracy"), base[layer]["accuracy"],
                     ci_text(base[layer]["accuracy_low"], base[layer]["accuracy_high"]),
                     c.get("transfer_a_on_b_accuracy"), c.get("cosine"), c.get("head_cosine_b")))  # fmt: skip
    columns = ("block", "RM accuracy", "95% CI", "RM control accuracy", "base accuracy",
               "95% CI (base)", "base probe on RM", "cos(base, RM)", "cos(RM, head)")  # fmt: skip
    return Table("probes", "Logistic probes per block (resid_post, last token)", columns,
                 tuple(rows), collapsed=True, note="Accuracy: word-grouped cross-validation "
                 "(a word never in train and test at once); CIs: bootstrap over words; control: "
                 "the same probe on shuffled labels.")  # fmt: skip


def _effect_table(key: str, title: str, effects: list[dict]) -> Table:
    columns = ("site", "block", "position", "normalised effect", "95% CI", "gap change",
               "95% CI (change)", "d (word changes)", "p", "p BH", "p Bonferroni")  # fmt: skip
    rows = tuple(
        (e["site"], e["layer"], e["position"], e.get("normalised_effect"),
         ci_text(e.get("normalised_ci_low"), e.get("normalised_ci_high")), e.get("delta_gap"),
         ci_text(e.get("delta_ci_low"), e.get("delta_ci_high")), e.get("d_change"),
         e.get("p_permutation"), e.get("p_fdr_bh"), e.get("p_bonferroni"))
        for e in effects
    )  # fmt: skip
    return Table(key, title, columns, rows, collapsed=True)


def inside_sections(root: Path, config: AuditConfig, inputs: AuditInputs, results: dict,
                    title: str) -> tuple[list[Section], list[TestEntry]]:  # fmt: skip
    """The centre section (layerwise figure + heatmap) and the tables of stages 4-7."""
    from analyses.figures.patching import layerwise_figure, position_heatmap

    design = inputs.design(config)
    lens, curves = _lens(root, results), probe_curves(results)
    sweep, pos = results.get("6-patching/sweep"), results.get("6-patching/positions")
    tests: list[TestEntry] = []
    figures, tables = [], []
    if lens is not None:
        effects = pd.DataFrame(sweep["effects"]) if sweep else None
        paths = layerwise_figure(lens, effects, root / "figures" / "layerwise_bias", title,
                                 design, curves)  # fmt: skip
        figures.append(Figure(
            "fig-layerwise", "The layerwise bias figure", "One shared axis: residual-stream "
            "depth. (a) Value lens: the RM's own readout (final norm + score head) applied to "
            "the RM's and the base's residual stream at the last token after each block; the "
            f"gap is the mean reward of {design.pair.first} words minus {design.pair.second} "
            "words, bands are 95% bootstrap CIs over words. (b) Logistic probes for the two "
            "categories at each block's output (accuracy with 95% CIs; chance = 0.5), the "
            "base's probe applied to the RM, and cosines (dashed, right axis). (c) Patching the "
            "base's activation into the RM at every position: 0 = no change, 1 = the RM's gap "
            "moves all the way to the base's reading; 95% CIs over words.",
            Path(paths[0]).relative_to(root).as_posix()))  # fmt: skip
    if pos and pos["effects"]:
        tokens = {int(k): v for k, v in pos["tokens"].items()}
        paths = position_heatmap(pd.DataFrame(pos["effects"]), root / "figures" /
                                 "position_heatmap", title, design, tokens)  # fmt: skip
        figures.append(Figure(
            "fig-heatmap", "Layer x position: which token carries it", "Patching one token "
            f"position of one block at a time, at the {len(pos['layers'])} blocks where the "
            "all-positions effect is largest; positions count back from the last token (labels "
            "give the token where every item has the same one). Colour and numbers: normalised "
            "effect (0 = none, 1 = the base's reading).",
            Path(paths[0]).relative_to(root).as_posix()))  # fmt: skip
    paragraphs = []
    if sweep:
        st = sweep["self_test"]
        paragraphs.append(
            f"Self-test before each sweep: the RM patched into itself on {st['n_patches']} "
            f"patches changed no score by more than {st['max_abs_diff']} "
            f"({'passed' if st['passed'] else 'FAILED'}). Both models ran on identical token ids."
        )
        tables.append(_effect_table("patch-effects", "Patching effects per block and site (all "
                                    "positions)", sweep["effects"]))  # fmt: skip
        tests += patch_tests(S6, sweep["effects"], "per-layer sweep", inputs.n_patch_words)
    if pos:
        tables.append(_effect_table("patch-positions", "Patching effects per block and position",
                                    pos["effects"]))  # fmt: skip
        tests += patch_tests(S6, pos["effects"], "layer x position sweep", inputs.n_patch_words)
    probe_table = _probe_table(results)
    if probe_table:
        tables.insert(0, probe_table)
    if lens is not None:
        rows = tuple((r["model_role"], r["depth"], r["gap"], ci_text(r["ci_low"], r["ci_high"]))
                     for r in lens.to_dict("records"))  # fmt: skip
        tables.insert(0, Table("value-lens", "Value-lens gap per depth", ("model", "depth",
                               "gap (reward units)", "95% CI"), rows, collapsed=True))  # fmt: skip
    if not (figures or tables):
        reasons = {config.skip_reason(s) for s in ("probes", "value-lens", "patching")}
        status = "; ".join(sorted(r for r in reasons if r)) or "not run"
        return [Section("inside", INSIDE, status=status), _token_section(config, results)], tests
    notes = (results.get("4-probes/compare") or {}).get("notes", [])
    paragraphs += [f"Probe comparison note: {n}" for n in notes]
    section = Section("inside", INSIDE, tuple(paragraphs), tuple(figures), tuple(tables))
    return [section, _token_section(config, results)], tests


def _token_section(config: AuditConfig, results: dict) -> Section:
    title = "7. Every vocabulary token as a one-token answer"
    tokens = results.get("7-token-sweep/sweep")
    if not tokens:
        return Section("stage-7", title, status=config.skip_reason("token-sweep") or "not run")
    cols = ("token id", "token", "mean reward", "lexicon category")
    top = tuple(
        (r["token_id"], repr(r["response"]), r["score"], r["category"]) for r in tokens["top"]
    )
    bottom = tuple((r["token_id"], repr(r["response"]), r["score"], r["category"])
                   for r in tokens["bottom"])  # fmt: skip
    return Section("stage-7", title, (
        f"The RM scored all {tokens['n_tokens']} tokens of its vocabulary as the whole answer "
        f"to {tokens['prompts']} prompt(s) (the exhaustive search of Christian et al. 2025).",
    ), tables=(Table("tokens-top", "Highest-reward tokens", cols, top),
               Table("tokens-bottom", "Lowest-reward tokens", cols, bottom)))  # fmt: skip
