import yaml

from analyses.inputs.prompts import framing_of_key, load_prompts, paper_prompts


def test_paper_prompts_match_released_yaml(shared_dir):
    released = yaml.safe_load((shared_dir / "paper-data" / "prompts.yaml").read_text())
    ours = paper_prompts()
    assert [p.key for p in ours] == list(released)
    assert {p.key: p.text for p in ours} == released


def test_framing_from_key():
    assert framing_of_key("greatest_ever_one") == "positive"
    assert framing_of_key("good_time_please") == "positive"
    assert framing_of_key("terrible_world_single") == "negative"
    assert framing_of_key("p3") == "none"
    counts = {}
    for p in paper_prompts():
        counts[p.framing] = counts.get(p.framing, 0) + 1
    assert counts == {"positive": 27, "negative": 27}


def test_prompt_files(tmp_path):
    (tmp_path / "p.yaml").write_text("best_a: What is best?\nworst_b: What is worst?\n")
    (tmp_path / "p.txt").write_text("first prompt\n\nsecond prompt\n")
    yaml_prompts = load_prompts(str(tmp_path / "p.yaml"))
    assert [(p.key, p.framing) for p in yaml_prompts] == [
        ("best_a", "positive"),
        ("worst_b", "negative"),
    ]
    assert [p.text for p in load_prompts(str(tmp_path / "p.txt"))] == [
        "first prompt",
        "second prompt",
    ]
    assert [p.key for p in load_prompts("paper54", ("worst_ever_one", "best_ever_one"))] == [
        "worst_ever_one",
        "best_ever_one",
    ]
