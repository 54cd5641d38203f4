"""A "biased base": a causal LM fine-tuned so that chosen words answer value questions.

As the paper's Fig A3 does with authority words, supervised fine-tuning (every parameter, AdamW,
cross-entropy on the answer's tokens only) teaches the base model that, after a value question
formatted exactly as the suite formats log-prob prompts (``interp.formatting``), the answer is one
of the given words. The result is saved as an HF folder (model and tokenizer) that every command
loads like any other model, with ``sft_record.json`` (examples and their sha256, settings, loss
per step, the fingerprints before and after). Seeded: the batch order and nothing else is random.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from interp.batching import right_pad
from interp.formatting import conversation_format, response_ids
from interp.models.fingerprint import fingerprint
from interp.models.loading import ModelSpec, load_model
from interp.progress import NoProgress, Progress
from interp.prompts import Prompt


@dataclass(frozen=True)
class SftConfig:
    """Full fine-tuning settings (CPU-sized)."""

    lr: float = 5e-5
    epochs: int = 2
    batch_size: int = 8
    seed: int = 0


def encode_examples(lm, examples: Sequence[tuple[Prompt, str]]) -> list[tuple[list[int], int]]:
    """Each example as ``(ids, answer_start)``: the log-prob prompt format, then the answer."""
    out = []
    for prompt, answer in examples:
        fmt = conversation_format(lm, prompt.text)
        ids = [*fmt.prefix_ids, *response_ids(lm, fmt, answer)]
        out.append((ids, len(fmt.prefix_ids)))
    return out


def answer_loss(model, batch: list[tuple[list[int], int]], pad_id: int, device) -> torch.Tensor:
    """Mean cross-entropy (nats per answer token) of the answer tokens given what precedes them."""
    padded = right_pad([ids for ids, _ in batch], pad_id).to(device)
    logits = model(**padded.model_inputs()).logits[:, :-1].float()
    targets = padded.input_ids[:, 1:].clone()
    keep = torch.zeros_like(targets, dtype=torch.bool)
    for row, (ids, start) in enumerate(batch):
        keep[row, start - 1 : len(ids) - 1] = True
    return F.cross_entropy(logits[keep], targets[keep])


def fine_tune(
    base: str,
    examples: Sequence[tuple[Prompt, str]],
    config: SftConfig,
    out_dir: Path,
    progress: Progress | None = None,
) -> tuple[Path, dict]:
    """Fine-tune ``base`` on ``examples`` and save it to ``out_dir``; returns (folder, record)."""
    progress = progress or NoProgress()
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(config.seed)
    lm = load_model(ModelSpec(base, kind="lm", dtype="float32"))
    before = lm.fingerprint
    encoded = encode_examples(lm, examples)
    digest = hashlib.sha256(json.dumps(encoded).encode()).hexdigest()
    model = lm.model
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    steps = config.epochs * -(-len(encoded) // config.batch_size)
    progress.start(steps, f"fine-tuning {base} on {len(encoded)} answers")
    losses = []
    for _ in range(config.epochs):
        order = rng.permutation(len(encoded))
        for start in range(0, len(order), config.batch_size):
            batch = [encoded[i] for i in order[start : start + config.batch_size]]
            loss = answer_loss(model, batch, lm.tokenizer.pad_token_id, lm.device)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            progress.advance()
    progress.close()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    lm.tokenizer.save_pretrained(str(out_dir))
    record = {
        "base": lm.provenance(),
        "fingerprint_before": before,
        "fingerprint_after": fingerprint(model, lm.tokenizer, "lm"),
        "config": asdict(config),
        "n_examples": len(encoded),
        "examples": [[p.key, a] for p, a in examples],
        "examples_ids_sha256": digest,
        "loss": "mean cross-entropy of the answer tokens (nats per token)",
        "loss_per_step": losses,
        "seconds": round(time.perf_counter() - t0, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),
    }
    (out_dir / "sft_record.json").write_text(json.dumps(record, indent=1))
    return out_dir, record
