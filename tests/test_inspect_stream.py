"""Streaming capture to disk: shards, resume after a real interruption, refusal of mixed settings."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError

TEXTS = [f"Text number {i}: the cat sat on the mat {'and ran ' * (i % 4)}away." for i in range(22)]
ROOT = Path(__file__).resolve().parents[1]


def _forward_counter(model):
    calls = []
    handle = model.hf.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_stream_matches_in_memory_capture(tiny, tmp_path):
    m = tiny("llama")
    s = wb.capture(m, TEXTS, sites=["resid_post", "logits"], layers=[1], out=tmp_path / "a", shard_size=5, batch_size=2)
    assert len(s) == 5 and s.computed == 5 and s.skipped == 0 and s.complete
    mem = wb.capture(m, TEXTS, sites=["resid_post", "logits"], layers=[1], batch_size=2)
    disk = s["resid_post", 1]
    seq = min(disk.shape[1], mem["resid_post", 1].shape[1])
    torch.testing.assert_close(disk[:, :seq], mem["resid_post", 1][:, :seq])
    shard = s.shard(4)
    assert shard.tokens.shape[0] == 2 and ("logits", None) in shard
    assert s.to_frame()["done"].all()


def test_resume_after_ctrl_c_skips_finished_shards(tiny, tmp_path):
    m = tiny("gpt2")
    out = tmp_path / "acts"
    calls, counter = _forward_counter(m)

    def interrupt(*_):
        if len(calls) == 3:  # Ctrl-C during the 3rd forward pass (shard 2 of 5 with shard_size=batch_size)
            raise KeyboardInterrupt
    stopper = m.hf.register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        wb.capture(m, TEXTS, sites=["resid_post"], out=out, shard_size=5, batch_size=5, progress=False)
    stopper.remove()
    done = sorted(p.name for p in out.glob("shard-*.safetensors"))
    assert done == ["shard-00000.safetensors", "shard-00001.safetensors"]
    stamps = {p: (out / p).stat().st_mtime_ns for p in done}
    calls.clear()
    s = wb.capture(m, TEXTS, sites=["resid_post"], out=out, shard_size=5, batch_size=5, progress=False)
    counter.remove()
    assert (s.computed, s.skipped) == (3, 2)
    assert len(calls) == 3  # only the 3 missing shards were computed
    assert all((out / p).stat().st_mtime_ns == t for p, t in stamps.items())
    fresh = wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "fresh", shard_size=5, batch_size=5, progress=False)
    for layer in (0, 1):
        assert torch.equal(s["resid_post", layer], fresh["resid_post", layer])


@pytest.mark.slow
def test_resume_after_killed_process(tmp_path):
    """SIGKILL a real capture process mid-run; the next run finishes only the missing shards."""
    out = tmp_path / "acts"
    script = textwrap.dedent(f"""
        import time, workbench as wb
        from workbench.testing import tiny_model
        m = tiny_model("llama")
        m.hf.register_forward_hook(lambda *a: time.sleep(0.4))  # slow enough to be killed mid-run
        wb.capture(m, {TEXTS!r}, sites=["resid_post"], out={str(out)!r}, shard_size=2, batch_size=2, progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 120
    while not (out / "shard-00002.safetensors").exists():
        assert proc.poll() is None, "capture process ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("shard-*.safetensors"))
    assert 3 <= len(done) < 11
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    m = wb.testing.tiny_model("llama")
    s = wb.capture(m, TEXTS, sites=["resid_post"], out=out, shard_size=2, batch_size=2, progress=False)
    assert s.skipped == len(done) and s.computed == 11 - len(done) and s.complete
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items())
    fresh = wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "fresh", shard_size=2, batch_size=2, progress=False)
    assert torch.equal(s["resid_post", 1], fresh["resid_post", 1])


def test_folder_with_other_settings_is_refused(tiny, tmp_path):
    m = tiny("gpt2")
    wb.capture(m, TEXTS[:4], sites=["resid_post"], out=tmp_path, shard_size=2, progress=False)
    with pytest.raises(InvalidInputError, match="different keys"):
        wb.capture(m, TEXTS[:4], sites=["mlp_out"], out=tmp_path, shard_size=2, progress=False)
    with pytest.raises(InvalidInputError, match="n_texts.*texts_sha256"):
        wb.capture(m, TEXTS[:6], sites=["resid_post"], out=tmp_path, shard_size=2, progress=False)
    with pytest.raises(InvalidInputError, match="list of texts"):
        wb.capture(m, "one text", out=tmp_path / "x")


def test_default_shard_size_follows_memory_and_resume_keeps_the_folders(tiny, tmp_path, monkeypatch):
    """Without shard_size a shard holds about SHARD_BYTES (in whole batches); resuming without
    shard_size adopts the folder's own, whatever the default would now be."""
    from workbench.inspect import stream
    from workbench.inspect.cache import estimate_bytes
    from workbench.inspect.capture import resolve_sites
    from workbench.inspect.sites import adapter
    m = tiny("llama")
    longest = max(len(m.tokenizer(t)["input_ids"]) for t in TEXTS)
    per_text = estimate_bytes(adapter(m), resolve_sites(m, ["resid_post"], None), 1, longest, None, 4, 1, False)["stored"]
    monkeypatch.setattr(stream, "SHARD_BYTES", 7 * per_text)
    s = wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "a", batch_size=3, progress=False)
    assert stream.json.loads((tmp_path / "a" / "manifest.json").read_text())["shard_size"] == 6  # 7 texts, whole batches
    assert len(s) == 4 and s.shard(0).tokens.shape[0] == 6 and s.shard(3).tokens.shape[0] == 4
    one = wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "b", batch_size=8, progress=False)
    assert len(one) == 3  # never less than one batch per shard
    monkeypatch.setattr(stream, "SHARD_BYTES", 10**12)
    again = wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "a", batch_size=3, progress=False)
    assert again.skipped == 4 and again.computed == 0
    with pytest.raises(InvalidInputError, match="shard_size must be a positive int or None"):
        wb.capture(m, TEXTS, sites=["resid_post"], out=tmp_path / "c", shard_size=0)


def test_streaming_capture_refuses_an_empty_list(tmp_path):
    m = wb.testing.tiny_model("gpt2")
    for call in (lambda: wb.inspect.capture_stream(m, [], tmp_path / "a"),
                 lambda: wb.capture(m, [], sites=["resid_post"], out=tmp_path / "b")):
        with pytest.raises(InvalidInputError, match="empty list"):
            call()
