"""Shared fixtures and tiers.

Tiers (as TransformerLens has them): unit tests (tiny random models, seconds) run by default;
``embedded`` tests load a real embedded model (fetched from PyPI on first use); ``slow`` tests run
whole pipelines for minutes. ``make test`` (CI) runs all three. A test that reads ``../shared``
(the paper's released data and the lexicon copies) is marked ``shared`` automatically; on a
checkout without ``../shared`` it is skipped with that reason in the summary (``-rs``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import SHARED, build_tiny_model

torch.set_num_threads(2)

NO_SHARED = (
    "needs ../shared (the paper's released data and lexicon copies), which is not beside this "
    "checkout"
)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "shared_dir" in getattr(item, "fixturenames", ()):
            item.add_marker("shared")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(NO_SHARED)
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


@pytest.fixture(scope="session")
def other_dir(tmp_path_factory) -> Path:
    """Where tests build tiny models with other seeds or depths (``helpers.other_rm``)."""
    return tmp_path_factory.mktemp("other-models")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tests of many tiny passes avoid waiting on a second,
    busy core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
