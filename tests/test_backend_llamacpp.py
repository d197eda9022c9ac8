"""The llama.cpp backend on the embedded GGUFs: same columns and (within measured tolerances) the
same numbers as the Hugging Face backend, which de-quantises the same GGUF to float32.

Tolerances, measured on SmolLM2-135M (per-token |log-prob difference| against HF float32 on the
pairs below):
* the GGUF re-quantised to F16 by llama.cpp: max 0.011, median 0.0012 nats. This is the check
  that the backend computes the right thing (same positions, same softmax, same truncation).
* the shipped Q4_1 GGUF as llama.cpp runs it: max 0.45, median 0.047 nats. The weights are the
  same numbers as HF's de-quantised copy, but llama.cpp also quantises the *activations* to 8
  bits (Q8_1) for its Q4_1 matrix products: the difference is what deployment does, not a bug.
The bounds below leave about 2x headroom over these maxima.
"""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.errors import BackendCapabilityError, InvalidInputError, InvalidTypeError

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install '.[llamacpp]'")
pytestmark = pytest.mark.real_model

SMOLLM = "smollm2-135m-instruct"
PAIRS = [("The capital of France is", " Paris"), ("Water boils at 100 degrees", " Celsius"),
         ("My favourite colour is", " blue and my favourite food is pizza"), ("Once upon a", " time"),
         ("2 + 2 =", " 4"), ("The cat sat on the", " mat")]
F16_MAX, F16_MEDIAN = 0.025, 0.003     # nats per token, llama.cpp on F16 weights vs HF float32
Q4_MAX, Q4_MEDIAN = 0.9, 0.1           # nats per token, llama.cpp on the Q4_1 GGUF vs HF float32


def _token_diffs(a, b):
    return np.abs(np.concatenate([np.subtract(x, y) for x, y in zip(a.token_logprobs, b.token_logprobs)]))


@pytest.fixture(scope="module")
def lcpp():
    return wb.load_model(SMOLLM, backend="llama.cpp")


def test_loads_as_llamacpp_model(lcpp):
    assert lcpp.backend.name == "llama.cpp"
    assert lcpp.hf is None and lcpp.kind == "causal" and lcpp.architecture == "llama"
    assert 100e6 < lcpp.n_params < 200e6
    assert lcpp.backend.settings()["weights"] == "Q4_1"
    assert "LlamaCppBackend" in repr(lcpp) and "Q4_1" in repr(lcpp)


def test_loglikelihood_matches_hf(lcpp, smollm):
    ours, ref = wb.loglikelihood(lcpp, PAIRS, cache=False), wb.loglikelihood(smollm, PAIRS, cache=False)
    assert list(ours.columns) == list(ref.columns)
    assert (ours.n_tokens == ref.n_tokens).all() and (ours.tokens == ref.tokens).all()
    diffs = _token_diffs(ours, ref)
    assert diffs.max() < Q4_MAX and np.median(diffs) < Q4_MEDIAN
    assert (ours.is_greedy == ref.is_greedy).mean() >= 5 / 6


def test_f16_requantised_matches_hf_closely(smollm):
    """With F16 weights llama.cpp keeps activations in 16-bit floats: then it agrees with the
    float32 reference to ~1e-3, which shows positions, softmax and targets are right."""
    from workbench.backends.quantize import quantize_gguf
    m = wb.load_model(quantize_gguf(SMOLLM, "F16"), backend="llama.cpp")
    assert m.backend.settings()["weights"] == "F16"
    diffs = _token_diffs(wb.loglikelihood(m, PAIRS, cache=False), wb.loglikelihood(smollm, PAIRS, cache=False))
    assert diffs.max() < F16_MAX and np.median(diffs) < F16_MEDIAN


def test_packed_requests_equal_single_requests(lcpp):
    """Packing several requests into one decode (separate sequences) changes nothing beyond
    kernel rounding: each request alone gives the same log-probs."""
    ids = [(lcpp.tokenizer(c, add_special_tokens=False)["input_ids"],
            lcpp.tokenizer(x, add_special_tokens=False)["input_ids"]) for c, x in PAIRS]
    together = lcpp.backend.score_tokens(lcpp, ids, token_budget=0)
    for req, packed in zip(ids, together):
        [alone] = lcpp.backend.score_tokens(lcpp, [req], token_budget=0)
        assert np.allclose(alone["token_logprobs"], packed["token_logprobs"], atol=2e-3)


# multiple choice (a shared question), a duplicate request (no rest of its own: every score comes
# from the group's first member) and a request sharing nothing
SHARED = ([("Question: What is the capital of France?\nAnswer:", c) for c in (" Paris", " London", " Berlin", " Rome")]
          + [("Question: Which animal says moo?\nAnswer:", c) for c in (" A cow", " A cat", " A cow")]
          + [("Once upon a", " time")])
# max |log-prob difference| per token, shared vs unshared: llama.cpp's numbers move with the batch
# (kernels chosen by batch size; see the module docstring). Measured on the capitals task (96
# requests): F16 0.011 (the same requests alone vs packed: 0.016); Q4_1 0.49 (alone vs packed: 0.43).
SHARE_F16_MAX = 0.04


def _decoded_tokens(model, monkeypatch):
    """Count the tokens llama.cpp decodes: sharing must decode fewer, not only give equal numbers."""
    engine, seen = model.backend.engine, []
    real = engine.decode
    monkeypatch.setattr(engine, "decode", lambda seqs, what="logits": seen.append(sum(len(s[1]) for s in seqs)) or real(seqs, what))
    return seen


def test_prefix_sharing_gives_the_unshared_numbers(smollm, monkeypatch):
    """Shared question prefixes (decoded once, cells copied to each choice's sequence) give the
    numbers of decoding every request whole, within llama.cpp's batch-to-batch differences, and
    both agree with float32 HF; with F16 weights so that the bound is tight."""
    from workbench.backends.quantize import quantize_gguf
    m = wb.load_model(quantize_gguf(SMOLLM, "F16"), backend="llama.cpp")
    ids = [(m.tokenizer(c, add_special_tokens=False)["input_ids"], m.tokenizer(x, add_special_tokens=False)["input_ids"])
           for c, x in SHARED]
    seen = _decoded_tokens(m, monkeypatch)
    shared = m.backend.score_tokens(m, ids, moments=True)
    n_shared, seen[:] = sum(seen), []
    plain = m.backend.score_tokens(m, ids, share_contexts=False, moments=True)
    assert n_shared < sum(seen) - 2 * len(ids[0][0])  # the question ran once per group, not per choice
    for a, b in zip(shared, plain):
        assert len(a["token_logprobs"]) == len(b["token_logprobs"]) and a["greedy"] == b["greedy"]
        assert np.abs(np.subtract(a["token_logprobs"], b["token_logprobs"])).max() < SHARE_F16_MAX
        assert np.abs(np.subtract(a["logp_mean"], b["logp_mean"])).max() < SHARE_F16_MAX
    assert shared[4]["token_logprobs"] == shared[6]["token_logprobs"]  # the duplicate: one set of rows
    ref = wb.loglikelihood(smollm, SHARED, cache=False)
    ours = wb.loglikelihood(m, SHARED, cache=False)
    assert _token_diffs(ours, ref).max() < F16_MAX


def test_prefix_sharing_on_the_shipped_gguf(lcpp, smollm, monkeypatch):
    """On the Q4_1 GGUF as shipped, shared prefixes decode fewer tokens and stay as close to float32
    HF as the plain path."""
    seen = _decoded_tokens(lcpp, monkeypatch)
    shared = wb.loglikelihood(lcpp, SHARED, cache=False)
    n_shared, seen[:] = sum(seen), []
    plain = wb.loglikelihood(lcpp, SHARED, cache=False, share_contexts=False)
    assert n_shared < sum(seen)
    ref = wb.loglikelihood(smollm, SHARED, cache=False)
    # measured max 0.21 shared, 0.55 unshared: the answer tokens are where Q4_1 and float32 differ most
    # (a wrong position or target would be off by nats)
    for ours in (shared, plain):
        assert _token_diffs(ours, ref).max() < Q4_MAX


def test_long_sequences_run_in_chunks_through_the_kv_cache(lcpp, monkeypatch):
    """A sequence longer than a decode's batch (or with more scored tokens than one decode may
    return) runs in chunks that continue the KV cache: the same log-probs as in one piece."""
    from workbench.backends import llamacpp
    ids = lcpp.tokenizer("The quick brown fox jumps over the lazy dog and runs far away.",
                         add_special_tokens=False)["input_ids"]
    req = [([lcpp.tokenizer.bos_token_id], ids)]
    [whole] = lcpp.backend.score_tokens(lcpp, req, token_budget=0)
    monkeypatch.setattr(llamacpp, "N_BATCH", 4)
    monkeypatch.setattr(lcpp.backend.engine, "max_outputs", 3)
    [chunked] = lcpp.backend.score_tokens(lcpp, req, token_budget=0)
    assert len(chunked["token_logprobs"]) == len(ids)
    assert np.allclose(whole["token_logprobs"], chunked["token_logprobs"], atol=2e-3)
    assert whole["greedy"] == chunked["greedy"]


def test_truncation_from_the_left(lcpp):
    """A context longer than the window loses its first tokens, as in the HF engine."""
    be = lcpp.backend
    old = be.limit
    be.limit = 8
    try:
        ids = list(range(100, 120))
        [cut] = be.score_tokens(lcpp, [(ids[:-2], ids[-2:])], token_budget=0)
        [ref] = be.score_tokens(lcpp, [(ids[-9:-2], ids[-2:])], token_budget=0)
    finally:
        be.limit = old
    assert np.allclose(cut["token_logprobs"], ref["token_logprobs"], atol=1e-4)


def test_rolling_perplexity_matches_hf(lcpp, smollm):
    text = ["The quick brown fox jumps over the lazy dog. " * 6]
    ours = wb.perplexity(lcpp, text, max_length=32, cache=False)
    ref = wb.perplexity(smollm, text, max_length=32, cache=False)
    assert list(ours.columns) == list(ref.columns) and ours.n_tokens[0] == ref.n_tokens[0]
    assert abs(ours.logprob[0] - ref.logprob[0]) / ref.n_tokens[0] < Q4_MEDIAN


def test_token_moments(lcpp):
    ids = [(lcpp.tokenizer("Hello there", add_special_tokens=False)["input_ids"], [11])]
    [r] = lcpp.backend.score_tokens(lcpp, ids, token_budget=0, moments=True)
    assert r["logp_mean"][0] < 0 and r["logp_var"][0] > 0


MOMENT_TEXTS = ["The quick brown fox jumps over the lazy dog.",
                "Paris is the capital of France, and Berlin is the capital of Germany.",
                "In 1905 Einstein published four papers that changed physics.",
                "def add(a, b):\n    return a + b\n",
                "She said that the results were surprising, but the committee was not convinced."]
# max |difference| per token against a float64 log-softmax of the same logits, measured on these
# texts: log-prob 4e-8, mean 6e-8, variance 1.4e-7 (SmolLM2, 49k vocabulary); 3e-8, 4e-8, 1.4e-7
# (Gemma 3, 262k vocabulary, 8 rows per softmax step). The exponentials are float32, summed in float64.
BRUTE_TOL = 1e-6


@pytest.mark.parametrize("alias", [SMOLLM, "gemma-3-270m"])
def test_token_moments_equal_a_brute_force_log_softmax(alias, monkeypatch):
    """Min-K%++'s moments (mean and variance of log p under p), the log-probs and greedy flags
    from llama.cpp's own pass, against scipy's float64 log-softmax over the full logits that the
    backend read: the same numbers within BRUTE_TOL (a formula or row-order slip is off by far more)."""
    from scipy.special import log_softmax

    from workbench.backends import llamacpp
    m = wb.load_model(alias, backend="llama.cpp")
    real, seen = llamacpp._row_stats, []
    monkeypatch.setattr(llamacpp, "_row_stats", lambda rows, moments: seen.append(np.array(rows, dtype=np.float64))
                        or real(rows, moments))
    tok = m.tokenizer
    for text in MOMENT_TEXTS:  # one request per call: the captured rows are its tokens, in order
        seen.clear()
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        target = tok(text, add_special_tokens=False)["input_ids"]
        [r] = m.backend.score_tokens(m, [(bos, target)], moments=True)
        logits = np.concatenate(seen)
        assert logits.shape == (len(target), m.backend.engine.n_vocab)
        ls = log_softmax(logits, axis=1)
        p = np.exp(ls)
        mu = (p * ls).sum(1)
        var = (p * (ls - mu[:, None]) ** 2).sum(1)
        assert np.abs(ls[np.arange(len(target)), target] - r["token_logprobs"]).max() < BRUTE_TOL
        assert np.abs(mu - r["logp_mean"]).max() < BRUTE_TOL
        assert np.abs(var - r["logp_var"]).max() < BRUTE_TOL
        assert r["greedy"] == (logits.argmax(1) == target).tolist()


# per-token max |difference| against the HF backend on the same GGUF (de-quantised to float32),
# token_stats on MOMENT_TEXTS (67 tokens), measured:
#   F16 re-quantisation (activations stay 16-bit): log-prob 0.017, mean 0.0088, sd 0.0061 (medians 0.0013, 0.0013, 0.0009)
#   shipped Q4_1 (8-bit activations, see the module docstring): log-prob 0.52, mean 0.31, sd 0.13 (medians 0.038, 0.065, 0.021)
# bounds with about 2x headroom; the sd of log p ranges 0.9-3.3 and the mean -7.6 to -0.2 on these tokens
MOMENT_BOUNDS = {"F16": dict(lp=0.035, mu=0.02, sd=0.015, median=0.003), "Q4_1": dict(lp=1.0, mu=0.6, sd=0.3, median=0.15)}


@pytest.mark.parametrize("weights", ["F16", "Q4_1"])
def test_token_moments_agree_with_hf_on_the_same_gguf(weights, smollm):
    from workbench.backends.quantize import quantize_gguf
    from workbench.scoring.token_stats import token_stats
    m = wb.load_model(SMOLLM if weights == "Q4_1" else quantize_gguf(SMOLLM, "F16"), backend="llama.cpp")
    assert m.backend.settings()["weights"] == weights
    ours, ref = token_stats(m, MOMENT_TEXTS, cache=False), token_stats(smollm, MOMENT_TEXTS, cache=False)
    assert (ours.n_tokens == ref.n_tokens).all()
    flat = lambda df, col: np.concatenate([np.asarray(x, dtype=float) for x in df[col]])
    bound = MOMENT_BOUNDS[weights]
    for col, key, f in (("token_logprobs", "lp", None), ("logp_mean", "mu", None), ("logp_var", "sd", np.sqrt)):
        a, b = flat(ours, col), flat(ref, col)
        d = np.abs(f(a) - f(b)) if f else np.abs(a - b)
        assert d.max() < bound[key] and np.median(d) < bound["median"], (weights, col, d.max(), np.median(d))


def test_another_models_tokenizer_is_refused(tmp_path):
    """llama.cpp takes token ids as they are: a tokenizer of another vocabulary (here SmolLM2's,
    smaller than Gemma's, so the size check passed) scored other tokens without an error."""
    from workbench.backends import gguf_files
    from workbench.errors import TokenizerMismatchError
    from workbench.testing import tiny_model
    smollm_tokenizer = gguf_files.header_folder(gguf_files.resolve(SMOLLM))
    with pytest.raises(TokenizerMismatchError, match="not this GGUF's: 491.. of its 49152 token ids"):
        wb.load_model("gemma-3-270m", backend="llama.cpp", tokenizer=smollm_tokenizer)
    tiny = tmp_path / "tiny"
    tiny_model("llama").tokenizer.save_pretrained(tiny)
    with pytest.raises(TokenizerMismatchError, match="not this GGUF's"):
        wb.load_model(SMOLLM, backend="llama.cpp", tokenizer=tiny)


def test_a_tokenizer_with_a_few_other_tokens_is_warned_about(tmp_path):
    """Two tokens swapped in an otherwise identical tokenizer: a warning naming them."""
    import json
    import shutil

    from workbench.backends import gguf_files
    folder = tmp_path / "swapped"
    shutil.copytree(gguf_files.header_folder(gguf_files.resolve(SMOLLM)), folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = [t for t, i in vocab.items() if i in (1000, 1001)]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.warns(UserWarning, match="spell 2 of 49152 tokens differently.*id 1000"):
        m = wb.load_model(SMOLLM, backend="llama.cpp", tokenizer=folder)
    assert m.backend.name == "llama.cpp"


def test_crows_pairs_runs_unchanged(lcpp, shared_data):
    res = wb.run_probe("crows_pairs", lcpp, data=shared_data / "crows_pairs", limit=20)
    assert len(res.items) > 0 and res.provenance["model"]["fingerprint"]["backend"]["name"] == "llama.cpp"
    assert {"score_more", "score_less"} <= set(res.items.columns)


def test_generate_greedy_and_seeded(lcpp, smollm):
    prompts = ["The capital of France is"]
    a = wb.generate(lcpp, prompts, max_new_tokens=8, cache=False)
    assert list(a.columns) == list(wb.generate(smollm, prompts, max_new_tokens=8, cache=False).columns)
    assert a.n_new_tokens[0] > 0 and a.completion[0] == wb.generate(lcpp, prompts, max_new_tokens=8).completion[0]
    s1 = wb.generate(lcpp, prompts, max_new_tokens=8, do_sample=True, seed=3, num_return_sequences=2, cache=False)
    s2 = wb.generate(lcpp, prompts, max_new_tokens=8, do_sample=True, seed=3, num_return_sequences=2, cache=False)
    assert s1.completion.tolist() == s2.completion.tolist() and len(s1) == 2


def test_embeddings_match_hf_last_layer(lcpp, smollm):
    sents = ["A sentence about cats.", "Another one, about the stock market."]
    ours, ref = wb.embed(lcpp, sents), wb.embed(smollm, sents)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert ours.shape == ref.shape and cos.min() > 0.99
    with pytest.raises(BackendCapabilityError, match="hf"):
        wb.embed(lcpp, sents, layer=3)


def test_hook_based_inspection_is_a_capability_error_naming_hf(lcpp):
    """Capture, the lens, DLA and steering run on llama.cpp now (tests/test_backend_llamacpp_inspect.py);
    what needs in-process hooks (ablation, patching, attribution) still names the 'hf' backend."""
    with pytest.raises(BackendCapabilityError, match="'hf'"):
        wb.inspect.ablate(lcpp, "The doctor said that", (" he", " she"), component="head")


def test_fingerprint_differs_from_hf_and_is_stable(lcpp, smollm):
    again = wb.load_model(SMOLLM, backend="llama.cpp")
    assert again.fingerprint_id == lcpp.fingerprint_id != smollm.fingerprint_id
    assert lcpp.fingerprint["weights_sha256"] == smollm.fingerprint["weights_sha256"]  # the same GGUF
    assert lcpp.fingerprint["backend"]["name"] == "llama.cpp"


def test_gguf_path_and_split_alias(lcpp, tmp_path):
    m = wb.load_model(lcpp.backend.gguf.path, backend="llama.cpp")
    assert m.fingerprint["weights_sha256"] == lcpp.fingerprint["weights_sha256"]
    gemma = wb.load_model("gemma-3-270m", backend="llama.cpp")  # four packages joined once in the cache
    assert gemma.backend.gguf.path.stat().st_size > 100e6 and gemma.architecture == "gemma3_text"
    df = wb.loglikelihood(gemma, [("The capital of France is", " Paris")], cache=False)
    assert df.logprob[0] < 0 and df.is_greedy[0] in (True, False)


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="backend='hf'"):
        wb.load_model(SMOLLM, backend="llama.cpp", dtype="bfloat16")
    with pytest.raises(InvalidTypeError, match="unknown options"):
        wb.load_model(SMOLLM, backend="llama.cpp", n_gpus=2)
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="not a .gguf"):
        wb.load_model(bad, backend="llama.cpp")
    with pytest.raises(InvalidInputError, match="transformers folder"):
        wb.load_model("all-minilm-l6-v2", backend="llama.cpp")


def test_embedding_long_sentences(smollm):
    """A long sentence makes the engine build a bigger context mid-call; embeddings stay on in it
    (they came back as 'no embeddings for batch position ...')."""
    fresh = wb.load_model(SMOLLM, backend="llama.cpp")    # its first context: 512 cells
    long = " ".join(["word"] * 300 + ["cat"] * 400)
    # every pooling: with one flagged token per sentence, a decode once held 200+ tokens and
    # llama.cpp (which outputs every token when embedding) aborted the process
    for pooling in ("last", "mean"):
        sents = [long, "A short one.", " ".join(["dog"] * 200)]
        ours, ref = wb.embed(fresh, sents, pooling=pooling), wb.embed(smollm, sents, pooling=pooling)
        cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
        assert np.isfinite(ours).all() and cos.min() > 0.99, (pooling, cos)
