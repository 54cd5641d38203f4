"""Shared fixtures: tiny random models (built once per session) and the embedded real models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny_models import build_tiny_model

# ../shared beside the checkout (CI clones next to a copy of it); tests that need it skip without.
SHARED = Path(__file__).resolve().parents[2] / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


def _tiny(tiny_dir: Path, arch: str, kind: str) -> str:
    folder = tiny_dir / f"{arch}-{kind}"
    if not (folder / "config.json").exists():
        build_tiny_model(folder, arch=arch, kind=kind)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llama_lm(tiny_dir) -> str:
    return _tiny(tiny_dir, "llama", "lm")


@pytest.fixture(scope="session")
def tiny_llama_rm(tiny_dir) -> str:
    return _tiny(tiny_dir, "llama", "rm")


@pytest.fixture(scope="session")
def tiny_gemma_lm(tiny_dir) -> str:
    return _tiny(tiny_dir, "gemma", "lm")


@pytest.fixture(scope="session")
def tiny_gemma_rm(tiny_dir) -> str:
    return _tiny(tiny_dir, "gemma", "rm")
