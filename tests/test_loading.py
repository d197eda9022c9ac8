"""load_model on tiny random-initialised models saved to temporary folders: every route (folder,
hub snapshot, Model passed in, pickle opt-in) and its options."""
from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.errors import CorruptModelError, InvalidInputError, OfflineError, UnsafeWeightsError, WrongModelKindError
from workbench.models.model import Model
from workbench.testing import tiny_model

TEXT = "The doctor said that she would arrive soon"


def save(model: Model, folder, **kw):
    model.hf.save_pretrained(folder, **kw)
    model.tokenizer.save_pretrained(folder)
    return folder


def logits(model: Model, text=TEXT):
    enc = model.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return model.hf(**{k: v.to(model.device) for k, v in enc.items()}).logits


@pytest.mark.parametrize("arch,kind", [("llama", "causal"), ("gpt2", "causal"), ("bert", "masked"),
                                       ("roberta", "masked")])
def test_folder_loads_the_same_model_with_the_right_kind(arch, kind, tmp_path):
    tiny = tiny_model(arch)
    loaded = wb.load_model(save(tiny, tmp_path / arch))
    assert loaded.kind == kind
    assert type(loaded.hf) is type(tiny.hf)
    assert torch.equal(logits(loaded), logits(tiny))
    assert set(loaded.fingerprint["weight_files"]) == {"model.safetensors"}
    assert loaded.fingerprint["source"] == f"folder:{(tmp_path / arch).resolve()}"
    assert wb.load_model(tmp_path / arch).fingerprint_id == loaded.fingerprint_id


def test_fingerprint_changes_when_the_weights_file_changes(tmp_path):
    a = wb.load_model(save(tiny_model("llama", seed=0), tmp_path / "a"))
    b = wb.load_model(save(tiny_model("llama", seed=1), tmp_path / "b"))
    assert a.fingerprint["tokenizer_sha256"] == b.fingerprint["tokenizer_sha256"]
    assert a.fingerprint["weights_sha256"] != b.fingerprint["weights_sha256"]
    assert a.fingerprint_id != b.fingerprint_id


def test_kind_detection_and_override_on_an_encoder_checkpoint(tmp_path):
    tiny = tiny_model("bert")
    encoder_dir = tmp_path / "encoder"
    tiny.hf.bert.save_pretrained(encoder_dir)  # a BertModel: no masked-LM head
    tiny.tokenizer.save_pretrained(encoder_dir)
    enc = wb.load_model(encoder_dir)
    assert enc.kind == "encoder" and type(enc.hf).__name__ == "BertModel"
    # asking for a head the checkpoint does not have is refused, not filled with random weights
    with pytest.raises(CorruptModelError, match="kind='encoder'"):
        wb.load_model(encoder_dir, kind="masked")
    # a masked LM loaded as an encoder drops the head and keeps the body's outputs
    masked_dir = save(tiny, tmp_path / "masked")
    body = wb.load_model(masked_dir, kind="encoder")
    assert body.kind == "encoder"
    batch = tiny.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(body.hf(**batch).last_hidden_state, tiny.hf.bert(**batch).last_hidden_state)


def test_kind_that_the_architecture_cannot_be_is_refused(tmp_path):
    folder = save(tiny_model("gpt2"), tmp_path / "gpt2")
    with pytest.raises(WrongModelKindError, match="cannot be loaded as kind='masked'"):
        wb.load_model(folder, kind="masked")
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        wb.load_model(folder, kind="seq2seq")


def test_dtype_option(tmp_path):
    folder = save(tiny_model("llama"), tmp_path / "m")
    assert wb.load_model(folder).dtype == torch.float32  # default: exact scores on CPU
    half = wb.load_model(folder, dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.fingerprint["dtype"] == "bfloat16"
    assert half.fingerprint_id != wb.load_model(folder).fingerprint_id
    with pytest.raises(InvalidInputError, match="dtype must be one of"):
        wb.load_model(folder, dtype="float8")


def test_revision_is_refused_where_it_would_be_ignored(tmp_path):
    folder = save(tiny_model("gpt2"), tmp_path / "m")
    with pytest.raises(InvalidInputError, match="hub ids only"):
        wb.load_model(folder, revision="main")


def test_a_model_passed_in_is_returned_as_is():
    tiny = tiny_model("gpt2")
    assert wb.load_model(tiny) is tiny
    with pytest.raises(InvalidInputError, match="would be ignored"):
        wb.load_model(tiny, dtype="float16")


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    tiny = tiny_model("llama")
    folder = tmp_path / "pickle"
    # transformers 5 only writes safetensors; a pickle checkpoint as older versions wrote it:
    tiny.hf.config.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    torch.save(tiny.hf.state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        wb.load_model(folder)
    loaded = wb.load_model(folder, allow_pickle=True)
    assert torch.equal(logits(loaded), logits(tiny))
    assert set(loaded.fingerprint["weight_files"]) == {"pytorch_model.bin"}


def test_trust_remote_code_is_off_by_default(tmp_path):
    import json
    folder = save(tiny_model("llama"), tmp_path / "remote")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    model = wb.load_model(folder)  # the auto_map is ignored: the built-in Llama class is used
    assert type(model.hf).__name__ == "LlamaForCausalLM"


def _fake_hub_cache(root, repo_id, tiny, commit="0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face cache laid out as huggingface_hub writes it, holding a tiny model."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    save(tiny, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_hub_id_loads_from_the_local_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = tiny_model("qwen2")
    commit = _fake_hub_cache(tmp_path / "hub", "wb-test/tiny-qwen2", tiny)
    model = wb.load_model("wb-test/tiny-qwen2", hub_cache_dir=tmp_path / "hub")
    assert model.source == model.fingerprint["source"] == f"hub:wb-test/tiny-qwen2@{commit}"
    assert model.name == "wb-test/tiny-qwen2"
    assert torch.equal(logits(model), logits(tiny))
    pinned = wb.load_model("wb-test/tiny-qwen2", revision=commit, hub_cache_dir=tmp_path / "hub")
    assert pinned.fingerprint_id == model.fingerprint_id


def test_hub_id_while_offline_says_so_and_how_to_use_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline") as err:
        wb.load_model("no-such-owner/no-such-model-4821", hub_cache_dir=tmp_path / "hub")
    assert "wb.load_model('/path/to/" in str(err.value)
    _fake_hub_cache(tmp_path / "hub", "wb-test/tiny", tiny_model("gpt2"))
    with pytest.raises(OfflineError, match="revision 'v2'"):  # a revision that is not cached
        wb.load_model("wb-test/tiny", revision="v2", hub_cache_dir=tmp_path / "hub")
