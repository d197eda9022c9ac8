"""The OpenAI-compatible server backend against a real server on loopback: llama-cpp-python's
``python -m llama_cpp.server`` on the embedded SmolLM2 GGUF, started by this module and stopped
after it, and compared with the llama.cpp backend in process on the same file. This server takes
text prompts only, one per request, which the backend detects at load (and checks that its echoed
tokens line up with the workbench's); its echoed log-probs line up with the prompt only after a
BOS token, which the load-time probe finds and the backend enforces."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import workbench as wb
from workbench.testing import llama_server
from workbench.errors import BackendCapabilityError, InvalidInputError, ServerError

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install '.[llamacpp]'")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] not installed: pip install '.[llamacpp]'")
pytestmark = pytest.mark.real_model

SMOLLM = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    with llama_server(SMOLLM) as url:
        yield url


@pytest.fixture(scope="module")
def served(server):
    return wb.load_model(server, backend="openai", model_name="smollm2", tokenizer=SMOLLM, timeout=60)


@pytest.fixture(scope="module")
def lcpp():
    return wb.load_model(SMOLLM, backend="llama.cpp")


def test_loads_and_probes_the_server(served, server):
    assert served.backend.name == "openai" and served.hf is None
    # llama-cpp-python's server: text prompts only, prompt log-probs aligned only after a BOS
    assert served.backend.token_prompts is False and served.backend.bos_only is True
    assert served.fingerprint["backend"] == {"name": "openai", "url": server, "model": "smollm2"}


def test_loglikelihood_agrees_with_llamacpp_in_process(served, lcpp):
    pairs = [("The capital of France is", " Paris"), ("Water boils at 100 degrees", " Celsius"),
             ("Once upon a", " time there was a king")]
    ours = wb.loglikelihood(served, pairs, bos=True, cache=False)
    ref = wb.loglikelihood(lcpp, pairs, bos=True, cache=False)
    assert list(ours.columns) == list(ref.columns) and (ours.n_tokens == ref.n_tokens).all()
    diffs = np.abs(np.concatenate([np.subtract(a, b) for a, b in zip(ours.token_logprobs, ref.token_logprobs)]))
    # the same GGUF and llama.cpp, but the server's own context settings and one sequence per
    # decode, so the 8-bit activation quantisation rounds differently: measured max 0.084, median 0.011
    assert diffs.max() < 0.2 and np.median(diffs) < 0.03
    assert (ours.is_greedy == ref.is_greedy).all()


def test_unaligned_prompts_are_refused_not_shifted(served):
    with pytest.raises(ServerError, match="BOS"):
        wb.loglikelihood(served, [("The capital of France is", " Paris")], bos=False, cache=False)


def test_text_scored_from_bos_is_a_clear_error_with_this_server(served):
    """llama-cpp-python's server echoes no log-prob for the first token after the BOS, so a
    text scored from its start (perplexity, CrowS-Pairs) is refused, not silently shortened."""
    with pytest.raises(ServerError, match="first token after the BOS"):
        wb.perplexity(served, ["The quick brown fox jumps over the lazy dog."], cache=False)


def test_generation_through_the_server(served, lcpp):
    out = wb.generate(served, ["The capital of France is"], max_new_tokens=6, cache=False)
    ref = wb.generate(lcpp, ["The capital of France is"], max_new_tokens=6, cache=False)
    assert list(out.columns) == list(ref.columns) and out.n_new_tokens[0] > 0
    assert out.completion[0].strip().split()[0] == ref.completion[0].strip().split()[0]


def test_inspection_and_errors(served, server):
    with pytest.raises(BackendCapabilityError, match="'hf'"):
        wb.capture(served, ["hello"], sites=("resid_post",), layers=[0])
    with pytest.raises(InvalidInputError, match="tokenizer="):
        wb.load_model(server, backend="openai", model_name="smollm2")
    port = _free_port()  # nothing listens there
    with pytest.raises(ServerError, match="did not answer"):
        wb.load_model(f"http://127.0.0.1:{port}/v1", backend="openai", model_name="x", tokenizer=SMOLLM,
                      max_retries=1, backoff=0.01, timeout=2)


def test_how_a_served_model_was_made(served):
    """A served model has no weights to hash: documentation says so, and lineage never reads two
    missing hashes as "the same weights"."""
    ind = wb.documentation(served).indicators().set_index("indicator")
    assert ind.loc["weights available", "status"] == "not disclosed"
    lin = wb.lineage(served, served)
    table = lin.summary().set_index("evidence")
    assert table.loc["weight hashes (fingerprint)", "value"] == "not measurable"
    assert lin.verdict != "same weights"


def _proxy(upstream: str, edit):
    """An HTTP server on 127.0.0.1 that forwards to ``upstream`` and passes each JSON answer
    through ``edit(choice)`` for every choice: the real server's numbers, with a field missing as
    another server would leave it out. Returns (base URL, server)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))) if self.command == "POST" else None
            req = urllib.request.Request(upstream.removesuffix("/v1") + self.path, data=body, method=self.command,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    status, answer = resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as e:
                status, answer = e.code, json.loads(e.read() or b"{}")
            for choice in answer.get("choices", []) if isinstance(answer, dict) else []:
                edit(choice)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server


def test_a_server_without_top_logprobs_leaves_greedy_unknown(server, served):
    """Log-probs but no top_logprobs: the same log-probs, and is_greedy None (unknown), where
    every token was reported greedy before."""
    url, proxy = _proxy(server, lambda choice: (choice.get("logprobs") or {}).pop("top_logprobs", None))
    try:
        m = wb.load_model(url, backend="openai", model_name="smollm2", tokenizer=SMOLLM, timeout=60)
        pairs = [("The capital of France is", " Paris"), ("The capital of France is", " a banana split")]
        ours = wb.loglikelihood(m, pairs, bos=True, cache=False)
    finally:
        proxy.shutdown()
    ref = wb.loglikelihood(served, pairs, bos=True, cache=False)
    assert ref.is_greedy.tolist() == [True, False]  # what the full answer says
    assert ours.is_greedy.tolist() == [None, None]
    assert np.allclose(ours.logprob, ref.logprob, atol=1e-6)


def test_a_server_without_logprobs_says_it_gives_none(server):
    """No logprobs at all: "gives no log-probs", not "misaligned" (the message before)."""
    url, proxy = _proxy(server, lambda choice: choice.update(logprobs=None))
    try:
        with pytest.raises(ServerError, match="gives no log-probs") as info:
            wb.load_model(url, backend="openai", model_name="smollm2", tokenizer=SMOLLM, timeout=60)
    finally:
        proxy.shutdown()
    assert "not the log-probs" not in str(info.value)


def test_a_served_models_fingerprint_has_every_backends_keys(served, lcpp, smollm):
    """The hf, llama.cpp and openai loaders all build their fingerprint with
    models.fingerprint.fingerprint_record: the same keys, plus only what each adds by design (the
    GGUF a model was loaded from, the model name a server answers to)."""
    assert (smollm.backend.name, lcpp.backend.name, served.backend.name) == ("hf", "llama.cpp", "openai")
    keys = set(smollm.fingerprint) - {"loaded_from"}  # the core that fingerprint_record always writes
    assert set(lcpp.fingerprint) == keys | {"loaded_from"}
    assert set(served.fingerprint) == keys | {"served_model"}
    assert served.fingerprint["served_model"] == "smollm2" and served.fingerprint["weights_sha256"] is None
    assert served.fingerprint["tokenizer_sha256"] == smollm.fingerprint["tokenizer_sha256"]
