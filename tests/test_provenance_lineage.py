"""wb.lineage against counter-examples built to fool it (issue 28): a copy whose 1-D tensors
changed while every matrix stayed equal, a copy with the same tensors but other file hashes, a
functionally identical copy with a permuted residual basis, and two fine-tunes of one base. Each
verdict must agree with every row it rests on. Tiny random Llamas: fast, no lock needed."""
from __future__ import annotations

import copy

import pytest
import torch

import workbench as wb
from workbench.testing import permuted_residual, tiny_model

MEDIAN_ROW = "per-tensor weight correlation, median (matrices, rows scaled to unit length)"
FUNCTION_ROW = "per-token log-prob agreement, 1 − mean squared difference / variance"
EQUAL_ROW = "tensors bitwise equal (1-D norm scales and biases included)"


def _scaled_1d(base, factor=3.0):
    """Every 1-D parameter (norm scales; biases where there are any) multiplied by ``factor``."""
    hf = copy.deepcopy(base.hf)
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 1:
                p.mul_(factor)
    return wb.Model.from_hf(hf, base.tokenizer, name="1-D tensors x3")


def test_lineage_compares_every_tensor_so_changed_norms_are_not_the_same_weights():
    """Every 1-D tensor x3: the 16 matrices are equal, the hashes differ, the function changed.
    This read "same weights" (only matrices were compared and the verdict overrode the hashes)."""
    base = tiny_model("llama")
    lin = wb.lineage(base, _scaled_1d(base))
    assert lin.verdict == "fine-tuned from, or both from one base"
    rows = lin.summary().set_index("evidence")
    assert rows.loc["weight hashes (fingerprint)", "value"] == "differ"
    n = sum(1 for _ in base.hf.parameters())
    n_1d = sum(p.ndim == 1 for p in base.hf.parameters())
    assert n_1d == 5
    assert rows.loc[EQUAL_ROW, "value"] == f"{n - n_1d} of {n} ({n - n_1d} of {n - n_1d} matrices, 0 of 5 1-D)"
    assert rows.loc["largest relative change, ‖b − a‖ / ‖a‖", "value"] == pytest.approx(2.0)
    assert "only 1-D tensors (norm scales, biases) changed" in rows.loc["verdict", "reading"]
    assert rows.loc[FUNCTION_ROW, "value"] < 0.9  # the function changed, and the row says so


def test_lineage_same_weights_despite_differing_hashes_says_why():
    """Hashes that differ give "same weights" only when every tensor is exactly equal (another file
    format of the same values), and the reading says so."""
    base = tiny_model("llama")
    other = wb.Model.from_hf(copy.deepcopy(base.hf), base.tokenizer, name="re-saved",
                             weight_hashes={"model.bin": "0" * 64})
    lin = wb.lineage(base, other)
    rows = lin.summary().set_index("evidence")
    assert rows.loc["weight hashes (fingerprint)", "value"] == "differ"
    assert lin.verdict == "same weights" and "format or metadata, not in values" in rows.loc["verdict", "reading"]


def test_lineage_lets_the_function_speak_for_a_permuted_copy():
    """A functionally identical copy with a permuted residual basis: weight correlation ~0, and
    the function the same. This read "same tokenizer only ... no evidence of a shared start"."""
    base = tiny_model("llama")
    perm = permuted_residual(base)
    lin = wb.lineage(base, perm)
    assert lin.verdict == "same function"
    rows = lin.summary().set_index("evidence")
    assert abs(rows.loc[MEDIAN_ROW, "value"]) < 0.1          # the weight test does not undo permutations
    assert rows.loc[FUNCTION_ROW, "value"] > 1 - 1e-6          # ... the function does
    assert rows.loc["next-token agreement", "value"] == 1.0
    assert "permuted" in rows.loc["verdict", "reading"]
    # a permuted copy that was then changed is not "the same function"
    changed = permuted_residual(_scaled_1d(base, 1.5))
    assert wb.lineage(base, changed).verdict == "same tokenizer only"


def test_lineage_never_claims_a_direction_of_fine_tuning():
    """Two fine-tunes of one base read exactly like parent and child: the verdict says both."""
    from workbench.training_data.testbed import finetune, synthetic_texts
    base = tiny_model("llama")
    one = finetune(base, synthetic_texts(16, "a"), epochs=2, lr=1e-3)
    two = finetune(base, synthetic_texts(16, "b"), epochs=2, lr=1e-3)
    for a, b in ((base, one), (one, two)):
        lin = wb.lineage(a, b)
        assert lin.verdict == "fine-tuned from, or both from one base"
        assert "either one from the other or both from one base" in lin.summary().iloc[-1].reading
