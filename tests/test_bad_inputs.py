"""Bad inputs across loading, scoring, inspection and attribution: each is refused at the door
with a WorkbenchError (also a ValueError/TypeError/KeyError where that fits) whose message says
what was wrong; good inputs of the same kinds still work; over-long scoring requests are warned
about once and recorded. All on tiny random models (window: 256 positions)."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import (ContextWindowError, InvalidInputError, InvalidTypeError, TruncationWarning,
                              UnsupportedSiteError, WorkbenchError)
from workbench.testing import tiny_model

WINDOW = 256  # max positions of every tiny model used here
LONG = "The cat sat on the mat and the dog chased the ball across the garden. " * 40  # ~600 tokens
SHORT = "The doctor said that"


class Ctx:
    """What the table's callables get: the tiny-model factory and a saved model folder."""

    def __init__(self, tiny, tmp_path_factory):
        self.tiny, self._tmp, self._folder = tiny, tmp_path_factory, None

    @property
    def folder(self):
        if self._folder is None:
            self._folder = self._tmp.mktemp("model")
            m = tiny_model("llama")
            m.hf.save_pretrained(self._folder)
            m.tokenizer.save_pretrained(self._folder)
        return self._folder

    @property
    def gpt2(self):
        return self.tiny("gpt2")

    @property
    def bert(self):
        return self.tiny("bert")


@pytest.fixture(scope="module")
def ctx(tiny, tmp_path_factory):
    return Ctx(tiny, tmp_path_factory)


@pytest.fixture(autouse=True)
def _no_cache(isolated_cache):
    """Every test scores into its own empty cache."""


def _use(cm):
    """Enter a context manager (steer, ablated_heads) so that its checks run."""
    with cm:
        pass


G = dict(cache=False)
CASES = [
    # -- loading: safety switches are strict booleans; devices and dtypes are checked -----------
    ("trust_remote_code='no'", lambda c: wb.load_model(c.folder, trust_remote_code="no"),
     InvalidTypeError, "trust_remote_code must be True or False.*'no'"),
    ("allow_pickle='false'", lambda c: wb.load_model(c.folder, allow_pickle="false"),
     InvalidTypeError, "allow_pickle must be True or False.*not read as booleans"),
    ("trust_remote_code=1", lambda c: wb.load_model(c.folder, trust_remote_code=1),
     InvalidTypeError, "trust_remote_code must be True or False"),
    ("allow_pickle=None", lambda c: wb.load_model(c.folder, allow_pickle=None),
     InvalidTypeError, "allow_pickle must be True or False"),
    ("device='cuda' without CUDA", lambda c: wb.load_model(c.folder, device="cuda"),
     InvalidInputError, "CUDA is not available"),
    ("device that is not a name", lambda c: wb.load_model(c.folder, device="gpu-please"),
     InvalidInputError, "not a device name"),
    ("device of the wrong type", lambda c: wb.load_model(c.folder, device=0.5),
     InvalidTypeError, "device must be a string"),
    ("dtype='int8'", lambda c: wb.load_model(c.folder, dtype="int8"),
     InvalidInputError, "dtype must be one of.*bfloat16"),
    ("dtype=torch.int8", lambda c: wb.load_model(c.folder, dtype=torch.int8),
     InvalidInputError, "dtype must be one of"),
    ("kind not a model kind", lambda c: wb.load_model(c.folder, kind="seq2seq"),
     InvalidInputError, "kind must be one of"),
    # device_map reached accelerate unchecked: a raw ValueError / RuntimeError from deep inside
    ("device_map='nonsense'", lambda c: wb.load_model(c.folder, device_map="nonsense"),
     InvalidInputError, "device_map='nonsense' is neither a placement strategy .*not a device name"),
    ("device_map={'': 'tpu'}", lambda c: wb.load_model(c.folder, device_map={"": "tpu"}),
     InvalidInputError, r"device_map\[''\]='tpu': device 'tpu' is not a device name"),
    ("device_map={'': 99} without that GPU", lambda c: wb.load_model(c.folder, device_map={"": 99}),
     InvalidInputError, r"device_map\[''\]=99 names GPU 99"),
    ("device_map=5", lambda c: wb.load_model(c.folder, device_map=5),
     InvalidTypeError, "device_map must be None, a strategy"),
    # "" is Path("."): it read the current folder (". has no config.json")
    ("load_model('')", lambda c: wb.load_model(""), InvalidInputError, "spec is an empty string"),
    ("load_model('', backend='llama.cpp')", lambda c: wb.load_model("", backend="llama.cpp"),
     InvalidInputError, "spec is an empty string"),
    ("Model.from_hf with an unknown kind", lambda c: wb.Model.from_hf(c.gpt2.hf, c.gpt2.tokenizer, kind="seq2seq"),
     InvalidInputError, "kind must be one of"),
    # -- scoring: generation parameters --------------------------------------------------------
    ("generate seed='x'", lambda c: wb.generate(c.gpt2, [SHORT], seed="x", **G),
     InvalidTypeError, "seed must be an int, got the str 'x'"),
    ("generate batch_size=0", lambda c: wb.generate(c.gpt2, [SHORT], batch_size=0, **G),
     InvalidInputError, "batch_size must be at least 1, got 0"),
    ("generate temperature=0 when sampling", lambda c: wb.generate(c.gpt2, [SHORT], do_sample=True, temperature=0, **G),
     InvalidInputError, "temperature must be greater than 0 when do_sample=True.*do_sample=False"),
    ("generate temperature=-1", lambda c: wb.generate(c.gpt2, [SHORT], temperature=-1.0, **G),
     InvalidInputError, "temperature must be at least 0"),
    ("generate max_new_tokens='5'", lambda c: wb.generate(c.gpt2, [SHORT], max_new_tokens="5", **G),
     InvalidTypeError, "max_new_tokens must be an int.*without quotes"),
    ("generate max_new_tokens=2.5", lambda c: wb.generate(c.gpt2, [SHORT], max_new_tokens=2.5, **G),
     InvalidTypeError, "max_new_tokens must be an int, got the float 2.5"),
    ("generate top_p=2.0", lambda c: wb.generate(c.gpt2, [SHORT], do_sample=True, top_p=2.0, **G),
     InvalidInputError, "top_p must be at most 1"),
    ("generate top_p=0", lambda c: wb.generate(c.gpt2, [SHORT], do_sample=True, top_p=0, **G),
     InvalidInputError, "top_p must be greater than 0"),
    ("generate top_p=nan", lambda c: wb.generate(c.gpt2, [SHORT], top_p=float("nan"), **G),
     InvalidInputError, "top_p must be a finite number"),
    ("generate do_sample='yes'", lambda c: wb.generate(c.gpt2, [SHORT], do_sample="yes", **G),
     InvalidTypeError, "do_sample must be True or False"),
    ("generate prompt past the window", lambda c: wb.generate(c.gpt2, [SHORT, LONG], **G),
     ContextWindowError, "prompt 1 .* longer than .* context window of 256 tokens"),
    ("generate prompt + max_new_tokens past the window",
     lambda c: wb.generate(c.gpt2, [SHORT], max_new_tokens=WINDOW, **G),
     ContextWindowError, r"prompt 0 \(\d+ tokens plus max_new_tokens=256\)"),
    # -- scoring: log-likelihood, perplexity, PLL, embeddings -----------------------------------
    ("loglikelihood token_budget=0", lambda c: wb.loglikelihood(c.gpt2, [(SHORT, " she")], token_budget=0, **G),
     InvalidInputError, "token_budget must be at least 1"),
    ("loglikelihood bos='yes'", lambda c: wb.loglikelihood(c.gpt2, [(SHORT, " she")], bos="yes", **G),
     InvalidTypeError, "bos must be 'auto', True or False"),
    ("loglikelihood cache='no'", lambda c: wb.loglikelihood(c.gpt2, [(SHORT, " she")], cache="no"),
     InvalidTypeError, "cache must be True or False"),
    ("loglikelihood requests not a list", lambda c: wb.loglikelihood(c.gpt2, 5, **G),
     InvalidTypeError, "list of .context, continuation. pairs"),
    ("loglikelihood continuation past the window", lambda c: wb.loglikelihood(c.gpt2, [(SHORT, LONG)], **G),
     ContextWindowError, "continuation of request 0 .*use wb.perplexity"),
    ("perplexity stride=0", lambda c: wb.perplexity(c.gpt2, [SHORT], stride=0, **G),
     InvalidInputError, "stride must be at least 1, got 0"),
    ("perplexity stride=2.5", lambda c: wb.perplexity(c.gpt2, [SHORT], stride=2.5, **G),
     InvalidTypeError, "stride must be an int"),
    ("perplexity stride > max_length", lambda c: wb.perplexity(c.gpt2, [SHORT], max_length=8, stride=9, **G),
     InvalidInputError, r"stride must be between 1 and max_length \(8\)"),
    ("embed layer=99", lambda c: wb.embed(c.gpt2, [SHORT], layer=99),
     InvalidInputError, "layer 99 out of range: .* 2 layers.*0..2"),
    ("embed layer='last'", lambda c: wb.embed(c.gpt2, [SHORT], layer="last"),
     InvalidTypeError, "layer must be an int"),
    ("embed text past the window", lambda c: wb.embed(c.bert, [SHORT, LONG]),
     ContextWindowError, "sentence 1 is .* tokens, longer than .*256.*truncate=True"),
    ("embed pooling='max'", lambda c: wb.embed(c.gpt2, [SHORT], pooling="max"),
     InvalidInputError, "pooling must be one of 'mean', 'cls', 'last'"),
    ("embed normalize='yes'", lambda c: wb.embed(c.gpt2, [SHORT], normalize="yes"),
     InvalidTypeError, "normalize must be True or False"),
    ("pseudo_loglikelihood past the window", lambda c: wb.pseudo_loglikelihood(c.bert, [LONG], **G),
     ContextWindowError, "sentence 0 is .* tokens, longer than .*256"),
    ("fill_mask top_k=0", lambda c: wb.fill_mask(c.bert, ["The [M] came."], top_k=0, **G),
     InvalidInputError, "top_k must be at least 1"),
    ("fill_mask past the window", lambda c: wb.fill_mask(c.bert, [LONG + " [M]"], **G),
     ContextWindowError, "text 0 is .* tokens"),
    ("scoring with a non-Model", lambda c: wb.loglikelihood("gpt2", [(SHORT, " she")]),
     InvalidInputError, "needs a workbench Model"),
    # a lone surrogate (bytes read with errors='surrogateescape') was a tokenizers TypeError
    ("loglikelihood context with a lone surrogate", lambda c: wb.loglikelihood(c.gpt2, [("caf\udce9 au", " lait")], **G),
     InvalidInputError, r"loglikelihood: request 0's context has a lone surrogate '\\udce9' at character 3"),
    ("loglikelihood continuation with a lone surrogate",
     lambda c: wb.loglikelihood(c.gpt2, [(SHORT, " she"), (SHORT, " \udcff")], **G),
     InvalidInputError, "request 1's continuation has a lone surrogate .* at character 1"),
    ("perplexity with a lone surrogate", lambda c: wb.perplexity(c.gpt2, [SHORT, "a \udcff b"], **G),
     InvalidInputError, "perplexity: item 1 has a lone surrogate .* at character 2.*errors='replace'"),
    ("embed with a lone surrogate", lambda c: wb.embed(c.gpt2, ["\udcff"]),
     InvalidInputError, "embed: item 0 has a lone surrogate .* at character 0"),
    ("generate with a lone surrogate", lambda c: wb.generate(c.gpt2, ["x\ud800"], **G),
     InvalidInputError, "generate: item 0 has a lone surrogate"),
    # -- inspection ----------------------------------------------------------------------------
    ("capture text past the window", lambda c: wb.capture(c.gpt2, [SHORT, LONG], progress=False),
     ContextWindowError, "text 1 is .* tokens, longer than .*256"),
    ("capture generation past the window", lambda c: wb.capture(c.gpt2, [SHORT], max_new_tokens=WINDOW, progress=False),
     ContextWindowError, r"text 0 \(\d+ tokens plus max_new_tokens=256\)"),
    ("capture layers on 'logits'", lambda c: wb.capture(c.gpt2, [SHORT], sites=["logits"], layers=[1]),
     UnsupportedSiteError, "layers=\\[1\\] were given but 'logits' has no layers"),
    ("capture layer out of range", lambda c: wb.capture(c.gpt2, [SHORT], layers=[3]),
     UnsupportedSiteError, "layer 3 out of range"),
    ("capture batch_size=0", lambda c: wb.capture(c.gpt2, [SHORT], batch_size=0),
     InvalidInputError, "batch_size must be at least 1"),
    ("capture progress='no'", lambda c: wb.capture(c.gpt2, [SHORT], progress="no"),
     InvalidTypeError, "progress must be True or False"),
    ("logit_lens target id past the vocabulary", lambda c: wb.logit_lens(c.gpt2, SHORT, targets=[10**6]),
     InvalidInputError, "target id 1000000 is outside the vocabulary .*ids 0..399"),
    ("logit_lens negative target id", lambda c: wb.logit_lens(c.gpt2, SHORT, targets=[-1]),
     InvalidInputError, "target id -1 is outside the vocabulary"),
    ("logit_lens k=2.5", lambda c: wb.logit_lens(c.gpt2, SHORT, k=2.5),
     InvalidTypeError, "k must be an int"),
    ("logit_lens text past the window", lambda c: wb.logit_lens(c.gpt2, LONG),
     ContextWindowError, "longer than .*256"),
    ("ablated_heads head 99", lambda c: _use(wb.inspect.ablated_heads(c.gpt2, [(0, 99)])),
     InvalidInputError, "head 99 out of range: .* 4 heads per layer"),
    ("ablated_heads layer 99", lambda c: _use(wb.inspect.ablated_heads(c.gpt2, [(99, 0)])),
     UnsupportedSiteError, "layer 99 out of range"),
    ("ablated_heads not pairs", lambda c: _use(wb.inspect.ablated_heads(c.gpt2, [3])),
     InvalidInputError, "list of \\(layer, head\\) pairs"),
    ("ablate prompt past the window", lambda c: wb.inspect.ablate(c.gpt2, LONG, " she", progress=False),
     ContextWindowError, "the prompt with its longest continuation is"),
    ("ablate n_samples=0", lambda c: wb.inspect.ablate(c.gpt2, SHORT, " she", n_samples=0),
     InvalidInputError, "n_samples must be at least 1"),
    ("patch max_rows=0", lambda c: wb.inspect.patch(c.gpt2, SHORT, "The nurse said that", " she", max_rows=0),
     InvalidInputError, "max_rows must be at least 1"),
    ("verify tol=-1", lambda c: wb.inspect.verify(c.gpt2, tol=-1),
     InvalidInputError, "tol must be at least 0"),
    ("steer with a NaN vector", lambda c: _use(wb.inspect.steer(c.gpt2, torch.full((32,), float("nan")), layer=0)),
     InvalidInputError, "32 NaN or infinite values"),
    ("steer with an inf vector", lambda c: _use(wb.inspect.steer(c.gpt2, torch.tensor([float("inf")] + [0.0] * 31),
                                                                 layer=0)),
     InvalidInputError, "1 NaN or infinite values out of 32"),
    ("steer with the wrong shape", lambda c: _use(wb.inspect.steer(c.gpt2, torch.ones(7), layer=0)),
     InvalidInputError, r"direction must have shape \(32,\)"),
    ("steer strength='big'", lambda c: _use(wb.inspect.steer(c.gpt2, torch.ones(32), layer=0, strength="big")),
     InvalidTypeError, "strength must be a number"),
    ("steer strength=inf", lambda c: _use(wb.inspect.steer(c.gpt2, torch.ones(32), layer=0, strength=float("inf"))),
     InvalidInputError, "strength must be a finite number"),
    # -- attribution ---------------------------------------------------------------------------
    ("attribute prompt past the window", lambda c: wb.attribute(c.gpt2, LONG, " she", random_check=False),
     ContextWindowError, "the prompt with its target is .* tokens.*cannot cut it"),
    ("attribute masked prompt past the window",
     lambda c: wb.attribute(c.bert, LONG + " The [MASK] came.", "doctor", random_check=False),
     ContextWindowError, "longer than .*256"),
    ("attribute n_steps='3'", lambda c: wb.attribute(c.gpt2, SHORT, " she", n_steps="3", random_check=False),
     InvalidTypeError, "n_steps must be an int"),
    ("attribute random_check='false'", lambda c: wb.attribute(c.gpt2, SHORT, " she", random_check="false"),
     InvalidTypeError, "random_check must be True or False"),
    ("mechanistic_audit n_fit=1", lambda c: wb.mechanistic_audit(c.gpt2, "winobias", n_fit=1),
     InvalidInputError, "n_fit must be at least 2, got 1"),
]


@pytest.mark.parametrize("what, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(ctx, what, call, error, message):
    if "without CUDA" in what and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(error, match=message) as info:
        call(ctx)
    assert isinstance(info.value, WorkbenchError)
    # the Python category fits: types are TypeErrors, values ValueErrors, unknown sites KeyErrors
    natural = TypeError if issubclass(error, InvalidTypeError) else (KeyError if error is UnsupportedSiteError
                                                                    else ValueError)
    assert isinstance(info.value, natural)
    assert not ctx.gpt2.interventions, "a refused call must leave no intervention behind"


def test_refused_interventions_leave_no_hook(ctx):
    m = ctx.gpt2
    ids = m.tokenizer([SHORT], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        before = m.hf(ids).logits
    with pytest.raises(InvalidInputError):
        _use(wb.inspect.ablated_heads(m, [(0, 1), (1, 99)]))  # the first pair is fine, the second is not
    with torch.inference_mode():
        assert torch.equal(m.hf(ids).logits, before)


# -- good inputs of the same kinds still work ---------------------------------------------------

def test_safety_switches_accept_real_booleans(ctx):
    m = wb.load_model(ctx.folder, trust_remote_code=False, allow_pickle=np.bool_(False), device="cpu")
    assert m.kind == "causal"
    assert wb.load_model(ctx.folder, device=torch.device("cpu"), dtype=torch.bfloat16).dtype == torch.bfloat16


def test_text_outside_ascii_is_still_scored(ctx):
    """The surrogate check refuses only what cannot be encoded: accents, CJK and emoji score."""
    texts = ["café au lait", "東京は日本の首都です", "a 🙂 b"]
    assert len(wb.perplexity(ctx.gpt2, texts, **G)) == 3
    assert len(wb.loglikelihood(ctx.gpt2, [(t, " ok") for t in texts], **G)) == 3


def test_device_map_that_this_machine_has_is_accepted(ctx):
    m = wb.load_model(ctx.folder, device_map={"": "cpu"})
    assert m.kind == "causal" and str(next(m.hf.parameters()).device) == "cpu"


def test_numpy_scalars_are_accepted_as_ints_and_bools(ctx):
    m = ctx.gpt2
    a = wb.generate(m, [SHORT], max_new_tokens=np.int64(3), seed=np.int32(1), batch_size=np.int64(1), **G)
    b = wb.generate(m, [SHORT], max_new_tokens=3, seed=1, batch_size=1, **G)
    assert a["completion"].tolist() == b["completion"].tolist()
    x = wb.loglikelihood(m, [(SHORT, " she")], bos=np.bool_(True), **G)
    y = wb.loglikelihood(m, [(SHORT, " she")], bos=True, **G)
    assert x["logprob"].iloc[0] == y["logprob"].iloc[0]


def test_embed_layer_range_and_truncate_option(ctx):
    m = ctx.bert
    n = m.n_layers
    first, last = wb.embed(m, [SHORT], layer=0), wb.embed(m, [SHORT], layer=n)
    assert np.allclose(wb.embed(m, [SHORT], layer=-(n + 1)), first)
    assert np.allclose(wb.embed(m, [SHORT], layer=-1), last)
    cut = wb.embed(m, [LONG], truncate=True)
    ids = m.tokenizer(LONG, truncation=True, max_length=WINDOW, return_tensors="pt")
    assert ids["input_ids"].shape[1] == WINDOW
    with torch.inference_mode():
        expected = m.hf.base_model(**ids)[0].mean(1).numpy()
    np.testing.assert_allclose(cut, expected, atol=1e-5)
    assert len(m.tokenizer(LONG)["input_ids"]) > WINDOW  # the tokenizer itself was left as it was


def test_inputs_that_just_fit_run(ctx):
    m = ctx.gpt2
    ids = m.tokenizer(LONG)["input_ids"][:WINDOW - 4]
    text = m.tokenizer.decode(ids)
    n = len(m.tokenizer(text)["input_ids"])
    assert n <= WINDOW - 2
    out = wb.generate(m, [text], max_new_tokens=WINDOW - n, **G)
    assert len(out) == 1
    cache = wb.capture(m, [text], sites=["logits"], progress=False)
    assert cache["logits"].shape[1] == n


def test_checked_keeps_the_signature_and_refuses_typos():
    assert "seed" in inspect.signature(wb.generate).parameters
    assert wb.generate.__doc__.startswith("Seeded generation")
    from workbench.validate import Int, checked
    with pytest.raises(TypeError, match="no parameters \\['sed'\\]"):
        checked(sed=Int())(lambda seed: seed)


# -- over-long scoring requests: truncation warned once and recorded ------------------------------

def _direct_logprob(m, ctx_ids, cont_ids) -> float:
    """Sum of log p(continuation) from one plain forward pass (independent of the engine)."""
    ids = torch.tensor([(ctx_ids + cont_ids)[:-1]])  # the last token predicts nothing scored
    with torch.inference_mode():
        lp = m.hf(ids).logits[0].float().log_softmax(-1)
    n = len(ctx_ids)
    return float(sum(lp[n - 1 + j, t] for j, t in enumerate(cont_ids)))


def _pairs(m, reqs):
    from workbench.scoring import tokenize as T
    return T.encode_pairs(m.tokenizer, reqs, T.resolve_bos(m.tokenizer, "auto"))


def test_loglikelihood_truncation_is_warned_once_and_recorded(ctx):
    m = ctx.gpt2
    reqs = [(SHORT, " she"), (LONG, " she"), (LONG + LONG, " he"), ("The nurse said", " he")]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        df = wb.loglikelihood(m, reqs, **G)
    trunc = [w for w in seen if issubclass(w.category, TruncationWarning)]
    assert len(trunc) == 1, [str(w.message) for w in seen]
    assert "2 of 4 requests" in str(trunc[0].message) and "truncated_tokens" in str(trunc[0].message)
    pairs = _pairs(m, reqs)
    expected = [max(0, len(c) + len(x) - 1 - WINDOW) for c, x in pairs]
    assert df["truncated_tokens"].tolist() == expected
    assert expected[0] == expected[3] == 0 and expected[1] > 0 and expected[2] > expected[1]
    assert df.attrs["truncated_rows"] == [1, 2] and df.attrs["context_window"] == WINDOW
    # the rule is unchanged: the last tokens of the context are kept, the continuation whole
    c, x = pairs[1]
    kept = c[len(c) - (WINDOW + 1 - len(x)):]
    assert df["logprob"].iloc[1] == pytest.approx(_direct_logprob(m, kept, x), abs=1e-4)
    # rows that fit score exactly as they do alone and as a plain forward pass says
    alone = wb.loglikelihood(m, [reqs[0], reqs[3]], **G)
    assert df["logprob"].iloc[[0, 3]].tolist() == alone["logprob"].tolist()
    assert alone["truncated_tokens"].tolist() == [0, 0] and alone.attrs["truncated_rows"] == []
    for i in (0, 3):
        assert df["logprob"].iloc[i] == pytest.approx(_direct_logprob(m, *pairs[i]), abs=1e-4)


def test_requests_that_fit_give_no_warning(ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        df = wb.loglikelihood(ctx.gpt2, [(SHORT, " she")], **G)
    assert df["truncated_tokens"].tolist() == [0]


def test_cached_rows_carry_truncated_tokens(ctx):
    from workbench.scoring.cache import ScoreCache, request_key
    m = ctx.gpt2
    reqs = [(SHORT, " she"), (LONG, " she")]
    with pytest.warns(TruncationWarning):
        first = wb.loglikelihood(m, reqs)
    with pytest.warns(TruncationWarning):  # served from the cache: still warned and recorded
        again = wb.loglikelihood(m, reqs)
    assert again["truncated_tokens"].tolist() == first["truncated_tokens"].tolist()
    assert again["logprob"].tolist() == first["logprob"].tolist()
    # an entry cached before the column existed gets it counted again, scores untouched
    key = request_key(m.state_id, "loglikelihood", first.attrs["scoring"], reqs[1])
    store = ScoreCache()
    row = store.get_many([key])[key]
    store.put_many({key: {k: v for k, v in row.items() if k != "truncated_tokens"}})
    with pytest.warns(TruncationWarning):
        old = wb.loglikelihood(m, reqs)
    assert old["truncated_tokens"].tolist() == first["truncated_tokens"].tolist()
    assert old["logprob"].tolist() == first["logprob"].tolist()


def test_perplexity_reports_truncated_tokens_and_warns_on_a_too_long_max_length(ctx):
    m = ctx.gpt2
    plain = wb.perplexity(m, [LONG], **G)
    assert plain["truncated_tokens"].tolist() == [0] and plain.attrs["truncated_rows"] == []
    with pytest.warns(TruncationWarning, match="max_length=1000 is longer than .*256"):
        wide = wb.perplexity(m, [LONG], max_length=1000, **G)
    assert wide["logprob"].tolist() == plain["logprob"].tolist()
