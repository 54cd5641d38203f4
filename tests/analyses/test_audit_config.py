"""The audit's settings: defaults < --quick preset < YAML --config < typed options; bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from analyses.audit.config import QUICK, AuditConfig
from analyses.audit.inputs import select_prompts, spread
from analyses.inputs.prompts import paper_prompts
from analyses.runs.audit import AuditSettings
from analyses.stats.contrast import CategoryPair
from interp.errors import UserError


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "audit.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_quick_file_options(tmp_path):
    config = _yaml(tmp_path, "rm: my-rm\nbase: my-base\nquick: true\nbootstrap: 77\n"
                   "patch-sites: [resid_pre, mlp_out]\ngap: Agency,Communion\n")  # fmt: skip
    resolved = AuditSettings(config=config, permutations=123).resolve()
    assert isinstance(resolved, AuditConfig)
    assert resolved.rm == "my-rm" and resolved.quick
    assert resolved.bootstrap == 77  # the file beats the quick preset (300)
    assert resolved.permutations == 123  # a typed option beats everything
    assert resolved.words_per_category == QUICK["words_per_category"]  # the preset
    assert resolved.patch_sites == ("resid_pre", "mlp_out")
    assert resolved.gap == CategoryPair("Agency", "Communion")
    assert resolved.seed == 0 and resolved.lexicon == "big2"  # defaults
    plain = AuditSettings(rm="a", base="b").resolve()
    assert plain.words_per_category is None and plain.bootstrap == 1000


@pytest.mark.parametrize(
    "text, message",
    [
        ("rm: a\nbase: b\nbootstrapp: 3\n", "unknown key 'bootstrapp'"),
        ("rm: a\nbase: b\nbootstrap: many\n", "config key 'bootstrap': expected int"),
        ("rm: a\nbase: b\nbootstrap: 0\n", "--bootstrap must be at least 1"),
        ("rm: a\nbase: b\nquick: yes please\n", "expected true/false"),
        ("rm: a\nbase: b\npatch_sites: [resid_mid]\n", "unknown site(s) resid_mid"),
        ("rm: a\nbase: b\nstages: [probes, tea]\n", "unknown stage(s) tea"),
        ("- rm\n- base\n", "expected a mapping"),
        ("rm: [unclosed\n", "not valid YAML"),
        ("base: b\n", "audit needs --rm and --base"),
    ],
)
def test_bad_config_files_are_refused(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        AuditSettings(config=_yaml(tmp_path, text)).resolve()
    assert message in str(err.value)


def test_cli_bad_config_is_one_error_line(tmp_path):
    from cli import main

    path = _yaml(tmp_path, "rm: a\nbase: b\nwords: 3\n")
    result = CliRunner().invoke(main, ["audit", "--config", str(path), "--out", str(tmp_path)])
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and "unknown key 'words'" in lines[0]
    missing = CliRunner().invoke(main, ["audit", "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "needs --rm and --base" in missing.output


def test_prompt_and_word_subsets_are_spread_over_the_framings():
    prompts = paper_prompts()
    two = select_prompts(prompts, 2)
    assert [p.key for p in two] == ["best_ever_one", "worst_ever_one"]
    four = select_prompts(prompts, 4)
    assert [p.framing for p in four].count("positive") == 2 and len(four) == 4
    assert select_prompts(prompts, None) == prompts and select_prompts(prompts, 99) == prompts
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], None) == [1, 2]


def test_model_loading_options_are_the_shared_ones(tmp_path):
    from cli import main

    config = _yaml(tmp_path, "rm: a\nbase: b\ntrust-remote-code: true\ndevice-map: auto\n"
                   "max-memory: 0=20GiB,cpu=64GiB\n")  # fmt: skip
    resolved = AuditSettings(config=config).resolve()
    assert resolved.load_kwargs() == {
        "trust_remote_code": True, "device_map": "auto",
        "max_memory": (("0", "20GiB"), ("cpu", "64GiB")),
    }  # fmt: skip
    with pytest.raises(UserError, match="--max-memory needs --device-map"):
        AuditSettings(rm="a", base="b", max_memory="0=1GiB").resolve()
    with pytest.raises(UserError, match="--device-map 'everywhere'"):
        AuditSettings(rm="a", base="b", device_map="everywhere").resolve()
    with pytest.raises(UserError, match="not a device name"):
        AuditSettings(rm="a", base="b", device="gpu0").resolve()
    shown = CliRunner().invoke(main, ["audit", "--help"]).output
    assert "--trust-remote-code" in shown and "--device-map" in shown and "--max-memory" in shown


def test_a_custom_code_preset_is_refused_without_the_flag(tmp_path):
    from cli import main

    args = ["audit", "--rm", "armorm-llama3-8b", "--base", "smollm2-135m-instruct",
            "--out", str(tmp_path / "a"), "--quick"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "pass --trust-remote-code" in result.output
