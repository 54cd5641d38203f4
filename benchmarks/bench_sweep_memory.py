"""Peak memory of a scoring sweep as the candidates grow 4x: units streamed to disk vs one table.

Run: ``.venv/bin/python benchmarks/bench_sweep_memory.py [--prompts 4]``

A small random reward model (2 blocks, d=64) with ``smollm2-135m-instruct``'s tokenizer (49,152
tokens) scores the vocabulary as one-token responses for ``--prompts`` prompts, with 1x
(``--shard 1/4``: a quarter of the vocabulary) and 4x (all of it) the candidates. Each case runs
in a child process of its own that reports its peak resident set size (``VmHWM``) at exit and
the size before scoring began:

- ``units``: ``run_score`` (the command's route: work units streamed to ``OUT.parts`` and
  assembled one unit at a time);
- ``in-memory``: ``interp.scoring.score_responses`` holding the whole table, then writing it
  (the route before work units), for contrast.

Target: the ``units`` peak at 4x within 10 % of its peak at 1x. Prints a table on stderr and JSON
on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(2)
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            yield line.split()[0][:-1], int(line.split()[1]) // 1024

mode, model, out, shard, prompts = sys.argv[1:6]
from analyses.inputs.prompts import paper_prompts
from analyses.inputs.score_table import write_score_table
from analyses.runs.score import ScoreSettings, run_score
from interp.models.loading import ModelSpec, load_model
from interp.scoring import Shard, score_responses, vocabulary_responses
keys = tuple(p.key for p in paper_prompts()[: int(prompts)])
before = dict(hwm())["VmRSS"]
t0 = time.perf_counter()
if mode == "units":
    run_score(ScoreSettings(model=model, kind="rm", responses="vocab", prompt_keys=keys,
                            out=Path(out), shard=Shard.parse(shard), unit_size=4096))
else:
    loaded = load_model(ModelSpec(model, kind="rm"))
    prompts = [p for p in paper_prompts() if p.key in keys]
    table = score_responses(loaded, prompts, vocabulary_responses(loaded, Shard.parse(shard)))
    write_score_table(table, out, {{}})
print(json.dumps({{"before_mb": before, "peak_mb": dict(hwm())["VmHWM"],
                  "seconds": time.perf_counter() - t0}}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_model(folder: Path) -> str:
    """A random 2-block Llama RM with smollm2's tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig

    from interp.models.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         num_labels=1, pad_token_id=tok.pad_token_id or tok.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=4)
    args = ap.parse_args(argv)
    results: dict = {"prompts": args.prompts}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "rm")
        code = CHILD.format(root=str(ROOT))
        for mode in ("units", "in-memory"):
            for scale, shard in (("1x", "1/4"), ("4x", "1/1")):
                out = Path(tmp) / f"{mode}-{scale}.parquet"
                done = subprocess.run(
                    [sys.executable, "-c", code, mode, model, str(out), shard, str(args.prompts)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                results[f"{mode}_{scale}"] = json.loads(done.stdout.strip().splitlines()[-1])
                log(f"{mode} {scale}: {results[f'{mode}_{scale}']}")
    for mode in ("units", "in-memory"):
        a, b = results[f"{mode}_1x"], results[f"{mode}_4x"]
        results[f"{mode}_growth"] = round(b["peak_mb"] / a["peak_mb"] - 1, 4)
        results[f"{mode}_growth_over_baseline"] = round(
            (b["peak_mb"] - b["before_mb"]) / max(1, a["peak_mb"] - a["before_mb"]) - 1, 4
        )
    log(
        f"units: peak {results['units_1x']['peak_mb']} MB at 1x, {results['units_4x']['peak_mb']} "
        f"MB at 4x ({results['units_growth']:+.1%}); in-memory: "
        f"{results['in-memory_1x']['peak_mb']} -> {results['in-memory_4x']['peak_mb']} MB "
        f"({results['in-memory_growth']:+.1%})"
    )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
