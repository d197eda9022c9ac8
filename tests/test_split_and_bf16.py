"""Split and low-precision models on the Hugging Face backend: every capability (scoring,
capture, lens, attention, ablation, patching, steering, attribution, a probe) runs on a model
whose layers are split between memory and disk (accelerate offload, the mechanism that splits a
70B model over GPUs) and on a bfloat16 model, and gives the float32 model's numbers: exactly
when split, within bfloat16's precision otherwise (the tolerance below; measured on SmolLM2 by
``benchmarks/split_precision.py``)."""
import pytest
import torch

import workbench as wb
from workbench.testing import capability_suite, compare_suites, tiny_model

# bfloat16 keeps 8 significant bits (relative step 2**-8 = 0.4%); differences accumulate over
# layers. Measured on these tiny models: at most 0.2% of the largest reference value, plus small
# absolute differences near zero.
BF16_RTOL, BF16_ATOL = 0.02, 0.01


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def saved(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    tiny = tiny_model(request.param)
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    whole = wb.load_model(folder)
    return folder, whole, capability_suite(whole)


def test_split_over_memory_and_disk_gives_the_same_numbers(saved, tmp_path):
    folder, whole, reference = saved
    budget = wb.estimate_memory(folder).set_index("dtype").loc["float32", "weights_bytes"] // 2
    split = wb.load_model(folder, device_map="auto", max_memory={"cpu": int(budget)}, offload_folder=tmp_path / "off")
    assert "disk" in set(split.hf.hf_device_map.values())  # some layers really live on disk
    assert split.fingerprint_id == whole.fingerprint_id      # same weights, same computation
    table = compare_suites(reference, capability_suite(split))
    assert set(table.capability) == {"scoring", "capture", "lens", "attention", "ablation", "patching",
                                     "steering", "attribution", "probe"}
    assert (table.max_abs_diff == 0).all(), table


def test_bfloat16_gives_the_float32_numbers_within_its_precision(saved):
    folder, whole, reference = saved
    half = wb.load_model(folder, dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.fingerprint_id != whole.fingerprint_id
    table = compare_suites(reference, capability_suite(half))
    bound = BF16_ATOL + BF16_RTOL * table.max_abs_reference
    assert (table.max_abs_diff <= bound).all(), table
    assert (table.max_abs_diff > 0).any()  # it is a different computation, not the same one


def test_the_randomised_model_check_says_what_to_do_on_a_split_model(saved, tmp_path):
    folder, _, _ = saved
    split = wb.load_model(folder, device_map={"": "disk"}, offload_folder=tmp_path / "off")
    with pytest.raises(wb.errors.InvalidInputError, match="random_check=False"):
        wb.attribute(split, "The doctor said that", " he")
    assert wb.attribute(split, "The doctor said that", " he", random_check=False)["attribution"].notna().all()


def test_how_a_split_model_was_made(saved, tmp_path):
    """Documentation and lineage on a model whose weights sit on disk: the offloaded matrices are
    said to be unread (they are meta tensors in the module), never a traceback."""
    folder, whole, _ = saved
    split = wb.load_model(folder, device_map={"": "disk"}, offload_folder=tmp_path / "off")
    measured = wb.documentation(split).to_frame().set_index("field")
    assert measured.loc["parameters", "value"] == whole.n_params
    lin = wb.lineage(whole, split).summary().set_index("evidence")
    assert lin.loc["weight hashes (fingerprint)", "value"] == "identical"
    assert lin.loc["same architecture (tensor names and shapes)", "value"] == "not measurable"
    assert lin.loc["verdict", "value"] == "same weights"
