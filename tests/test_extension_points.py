"""The extension points, used only through their public registration: a toy architecture family
(Qwen3, which has no built-in family) and a toy probe run through scoring, capture, the checks of
every site, and run_probe, exactly like the built-in ones."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.errors import BackendCapabilityError, InvalidInputError, UnsupportedSiteError
from workbench.families import Family, llama, unregister_family
from workbench.probes import ProbeSpec
from workbench.probes.api import unregister_probe
from workbench.stats import mean_metric


def qwen3_tiny(model_type, vocab_size, **common):
    import transformers as T
    return T.Qwen3Config(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8, max_position_embeddings=256, vocab_size=vocab_size,
                         tie_word_embeddings=False, **common)


# Qwen3's modules carry Llama's names (it adds q/k norms inside attention), so its sites are Llama's:
# a Llama-like family is one Family(...) and a tiny config, as docs/architecture.md says
TOY = Family(name="toy-qwen3", model_types=("qwen3",), layers="layers", sites=llama.sites, final_norm="norm",
             tiny_config=qwen3_tiny)


def _unregistered_qwen3():
    """A tiny Qwen3 built by hand, before any family for it exists."""
    import transformers as T
    from workbench.testing import tiny_tokenizer
    tok = tiny_tokenizer("bpe")
    cfg = qwen3_tiny("qwen3", len(tok), bos_token_id=0, eos_token_id=0, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return wb.Model.from_hf(T.AutoModelForCausalLM.from_config(cfg), tok, name="tiny-qwen3")


@pytest.fixture
def toy_family():
    family = wb.register_family(TOY)
    yield family
    unregister_family(TOY.name)


PAIRS = [("The keys to the cabinet", " are", " is"), ("The author of the books", " is", " are"),
         ("The dogs in the garden", " bark", " barks"), ("The cat near the trees", " sleeps", " sleep")] * 3


def _load(source, ctx):
    rows = json.loads(open(source).read())
    items = pd.DataFrame([{"item_id": i, "prefix": p, "good": g, "bad": b, "subject": "plural" if g in (" are", " bark") else "singular"}
                          for i, (p, g, b) in enumerate(rows)])
    return items, [source]


def _score(model, items, ctx):
    ll = wb.loglikelihood(model, [(p, c) for p, g, b in zip(items.prefix, items.good, items.bad) for c in (g, b)],
                          cache=ctx.cache)
    lp = ll.logprob.to_numpy().reshape(-1, 2)
    return items.assign(lp_good=lp[:, 0], lp_bad=lp[:, 1], prefers_good=(lp[:, 0] > lp[:, 1]).astype(int))


def _metrics(options):
    return [mean_metric("pct_grammatical", "prefers_good", kind="binary", scale=100, ideal=100)]


TOY_PROBE = ProbeSpec(name="toy_agreement", description="toy: subject-verb agreement preference", load=_load,
                      score=_score, metrics=_metrics, categories=("subject",), kinds=("causal",), licence="CC0-1.0")


@pytest.fixture
def toy_probe():
    spec = wb.register_probe(TOY_PROBE)
    yield spec
    unregister_probe(TOY_PROBE.name)


def test_family_registration_gives_every_site(toy_family):
    m = wb.testing.tiny_model("qwen3")            # the tiny config comes from the family
    assert m.architecture == "qwen3" and "qwen3" in wb.testing.archs()
    report = wb.inspect.verify(m)                 # every site against output_hidden_states, lens == logits
    assert report.ok, report.report[~report.report.ok]
    cache = wb.capture(m, ["The keys to the cabinet are here."], sites=["resid_post", "attn_pattern", "z"])
    assert cache["resid_post", 1].shape[-1] == 32 and cache["z", 0].shape[-2:] == (4, 8)
    assert torch.allclose(cache["attn_pattern", 0].sum(-1), torch.ones(1), atol=1e-5)


def test_scoring_needs_no_family_and_registration_changes_no_score():
    plain = _unregistered_qwen3()
    with pytest.raises(UnsupportedSiteError, match="'qwen3' has no activation-site adapter"):
        wb.capture(plain, ["a b c"], sites=["resid_post"])
    before = wb.loglikelihood(plain, [(p, g) for p, g, _ in PAIRS[:4]], cache=False).token_logprobs.tolist()
    wb.register_family(TOY)
    try:
        after = wb.loglikelihood(_unregistered_qwen3(), [(p, g) for p, g, _ in PAIRS[:4]], cache=False).token_logprobs.tolist()
        assert wb.capture(plain, ["a b c"], sites=["resid_post"])["resid_post", 0].shape[0] == 1
    finally:
        unregister_family(TOY.name)
    assert before == after  # bitwise: the family's head is the generic causal head


def test_registering_twice_is_refused():
    wb.register_family(TOY)
    try:
        with pytest.raises(InvalidInputError, match="already registered"):
            wb.register_family(TOY)
    finally:
        unregister_family(TOY.name)
    with pytest.raises(InvalidInputError, match="already exists"):
        wb.register_probe(wb.probes.get_spec("crows_pairs"))


def test_toy_probe_on_toy_family(toy_family, toy_probe, tmp_path):
    data = tmp_path / "agreement.json"
    data.write_text(json.dumps(PAIRS))
    m = wb.testing.tiny_model("qwen3")
    assert "toy_agreement" in set(wb.list_probes().probe)
    res = wb.run_probe("toy_agreement", m, data=data, n_boot=200)
    s = res.summary().set_index(["metric", "category"])
    items = res.items
    assert len(items) == len(PAIRS)
    assert s.loc[("pct_grammatical", "all"), "value"] == pytest.approx(100 * items.prefers_good.mean())
    assert s.loc[("pct_grammatical", "all"), "n"] == len(PAIRS)
    assert {"plural", "singular"} <= set(s.loc["pct_grammatical"].index)
    assert res.provenance["model"]["fingerprint_id"] == m.fingerprint_id
    assert res.provenance["data"]["sha256"]
    # the same probe on another model compares like a built-in one
    other = wb.run_probe("toy_agreement", wb.testing.tiny_model("qwen3", seed=1), data=data, n_boot=200)
    cmp = wb.compare(res, other)
    assert "pct_grammatical" in set(cmp.metric)


def test_hf_backend_and_capability_errors(toy_family):
    m = wb.testing.tiny_model("qwen3")
    assert m.backend.name == "hf" and m.fingerprint["backend"]["name"] == "hf"
    assert "hf" in wb.backends.backend_names()

    class ScoresOnly(wb.backends.Backend):
        """A backend that can only score (through the HF engine of ``hf``): everything else must be
        refused, naming 'hf'."""
        name = "scores-only"
        capabilities = frozenset({"token_logprobs"})

        def __init__(self, reference):
            self.reference, self.config, self.n_params = reference, reference.config, reference.n_params

        def score_tokens(self, model, requests, **kw):
            return self.reference.backend.score_tokens(self.reference, requests, **kw)

    fp = {k: v for k, v in m.fingerprint.items() if k != "backend"}
    s = wb.Model(hf=None, tokenizer=m.tokenizer, name="scores-only", kind="causal", fingerprint=fp,
                 backend=ScoresOnly(m))
    assert s.fingerprint["backend"] == {"name": "scores-only"}
    assert s.fingerprint_id != m.fingerprint_id  # another backend is another computation
    a = wb.loglikelihood(m, [(p, g) for p, g, _ in PAIRS[:3]], cache=False)
    b = wb.loglikelihood(s, [(p, g) for p, g, _ in PAIRS[:3]], cache=False)
    assert a.logprob.tolist() == b.logprob.tolist()
    with pytest.raises(BackendCapabilityError, match="backend='hf'"):
        wb.capture(s, ["a b"], sites=["resid_post"])
    with pytest.raises(BackendCapabilityError, match="'scores-only' backend cannot do generation"):
        wb.generate(s, ["a b"])
    with pytest.raises(InvalidInputError, match="unknown backend 'nope'"):
        wb.load_model("x", backend="nope")


def test_a_benchmark_task_is_a_probe_with_the_runners_numbers(tmp_path):
    """Tasks and probes share one contract: a task read as a probe spec gives, through
    wb.run_probe, the numbers the benchmark runner stores for it."""
    from workbench.tasks.unit import task_as_probe
    m = wb.testing.tiny_model("gpt2")
    wb.register_probe(task_as_probe("capitals"), replace=True)
    try:
        as_probe = wb.run_probe("task:capitals", m, n_boot=200, cache=False)
    finally:
        unregister_probe("task:capitals")
    grid = wb.run({"gpt2": m}, ["capitals"], store=tmp_path / "r.db", progress=False, score_kwargs={"cache": False})
    table = grid.table().set_index("metric")
    summary = as_probe.summary().query("category == 'all'").set_index("metric")
    for metric in ("acc", "acc_norm"):
        assert summary.loc[metric, "value"] == pytest.approx(table.loc[metric, "value"])
        assert summary.loc[metric, "ci_low"] == pytest.approx(table.loc[metric, "ci_low"])
        assert summary.loc[metric, "n"] == table.loc[metric, "n"]
    stored = grid.items("gpt2", "capitals").set_index("id")
    assert (as_probe.items.set_index("id").loc[stored.index, "correct"] == stored["correct"]).all()


class BigramBackend(wb.backends.Backend):
    """A toy backend with an engine of its own: add-one bigram counts over the tokenizer's ids,
    so every number it gives can be worked out by hand."""
    name = "toy-bigram"
    capabilities = frozenset({"token_logprobs"})

    def __init__(self, tokenizer, corpus, config):
        self.vocab, self.config, self.calls = len(tokenizer), config, 0
        self.counts = np.ones((self.vocab, self.vocab))
        for text in corpus:
            ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False).input_ids
            for a, b in zip(ids, ids[1:]):
                self.counts[a, b] += 1
        self.n_params = self.counts.size

    def settings(self):
        return {"smoothing": "add-one"}

    def logprob(self, previous, token):
        return float(np.log(self.counts[previous, token] / self.counts[previous].sum()))

    def score_tokens(self, model, requests, **kw):
        self.calls += 1
        out = []
        for context, continuation in requests:
            ids = list(context) + list(continuation)
            lps = [self.logprob(ids[i - 1], ids[i]) for i in range(len(context), len(ids))]
            greedy = [bool(self.counts[ids[i - 1]].argmax() == ids[i]) for i in range(len(context), len(ids))]
            out.append({"token_logprobs": lps, "greedy": greedy})
        return out


CORPUS = ["The keys to the cabinet are here", "The dogs in the garden bark", "The cat near the trees sleeps"]


def load_bigram(spec, **options):
    """The toy backend's loader: its fingerprint is fingerprint_record's, as every loader's."""
    import transformers as T
    from workbench.models.fingerprint import fingerprint_record, weights_hash
    from workbench.testing import tiny_tokenizer
    tok = tiny_tokenizer("bpe")
    config = T.PretrainedConfig(max_position_embeddings=256)
    config.model_type = "toy-bigram"
    backend = BigramBackend(tok, CORPUS, config)
    fp = fingerprint_record(weights_sha256=weights_hash({"counts": str(backend.counts.sum())}), weight_files={},
                            tokenizer=tok, config=config, dtype="float64", device="cpu", licence="CC0-1.0",
                            source=f"toy-bigram:{spec}")
    return wb.Model(hf=None, tokenizer=tok, name=str(spec), kind="causal", fingerprint=fp, licence="CC0-1.0",
                    source=fp["source"], backend=backend)


@pytest.fixture
def toy_backend():
    entry = wb.register_backend("toy-bigram", load_bigram, ["token_logprobs"], description="toy: add-one bigrams")
    yield entry
    wb.backends.unregister_backend("toy-bigram")


def test_a_registered_backend_scores_through_load_model(toy_backend, toy_probe, tmp_path):
    model = wb.load_model("corpus-v1", backend="toy-bigram")
    assert isinstance(model.backend, BigramBackend) and model.fingerprint["backend"] == {
        "name": "toy-bigram", "smoothing": "add-one"}
    reqs = [("The dogs in the garden", " bark"), ("The dogs in the garden", " barks"), ("The", " cat")]
    got = wb.loglikelihood(model, reqs, cache=False)
    assert model.backend.calls == 1
    tok = model.tokenizer
    for (context, continuation), (_, row) in zip(reqs, got.iterrows()):
        # by hand: the tokenizer's ids of the whole string, the continuation's tokens after the context's
        ctx_ids = [tok.bos_token_id] + tok(context, add_special_tokens=False).input_ids
        all_ids = [tok.bos_token_id] + tok(context + continuation, add_special_tokens=False).input_ids
        assert all_ids[:len(ctx_ids)] == ctx_ids
        expected = [model.backend.logprob(all_ids[i - 1], all_ids[i]) for i in range(len(ctx_ids), len(all_ids))]
        assert row.token_logprobs == pytest.approx(expected, abs=1e-12) and row.n_tokens == len(expected)
    assert got.logprob[0] > got.logprob[1]  # " bark" follows "garden" in the corpus, " barks" never does
    # a bias probe runs on it unchanged, and what it cannot do is refused naming a backend that can
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(PAIRS))
    res = wb.run_probe("toy_agreement", model, data=str(data))
    assert res.provenance["model"]["backend"]["name"] == "toy-bigram" and len(res.items) == len(PAIRS)
    with pytest.raises(BackendCapabilityError, match="backend='hf'"):
        wb.generate(model, ["The"])
    wb.backends.unregister_backend("toy-bigram")
    with pytest.raises(InvalidInputError, match="unknown backend 'toy-bigram'"):
        wb.load_model("corpus-v1", backend="toy-bigram")
    wb.register_backend("toy-bigram", load_bigram, ["token_logprobs"])  # for the fixture's clean-up


def _tiny_vipllava(make_tokenizer, seed: int = 0):
    """VipLlava (no built-in family): LLaVA's module paths, a projector over several tower layers."""
    import transformers as T
    from workbench.families.vlm import tiny_text, tiny_vision
    tok = make_tokenizer({"image_token": "<image>"})
    cfg = T.VipLlavaConfig(vision_config=T.CLIPVisionConfig(**tiny_vision(projection_dim=32)),
                           text_config=T.LlamaConfig(**tiny_text(vocab_size=len(tok), tie_word_embeddings=False)),
                           image_token_index=tok.image_token_id, vision_feature_layers=[-2, -1])
    proc = T.LlavaProcessor(image_processor=T.CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                            tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                            image_token="<image>", num_additional_image_tokens=1)
    torch.manual_seed(seed)
    return T.VipLlavaForConditionalGeneration(cfg).eval(), proc


def test_a_vision_language_family_registers_through_the_public_function():
    """docs/vision_language.md: a new vision-language family is vision_language_family(...) (in the
    package, a file ending in FAMILY = ...; outside it, wb.register_family of the same)."""
    from workbench.families import vision_language_family
    from workbench.testing import tiny_image, tiny_vlm, vlm_families
    from workbench.vision.capture import verify_vision
    assert "toy-vipllava" not in vlm_families()
    with pytest.raises(ValueError, match="unknown tiny vision-language family"):
        tiny_vlm("toy-vipllava")
    family = vision_language_family("toy-vipllava", ("vipllava",), llama.FAMILY, tiny=_tiny_vipllava,
                                    notes="toy: VipLlava through the public recipe")
    wb.register_family(family)
    try:
        assert "toy-vipllava" in vlm_families()
        vlm = tiny_vlm("toy-vipllava")
        assert vlm.kind == "vision-language" and vlm.architecture == "vipllava"
        # every site the family declares, language model and vision tower, against output_hidden_states
        assert verify_vision(vlm).ok and wb.inspect.verify(vlm).ok
        # scoring with an image: the processor's tokens, the model's logits, log-softmax by hand
        context, continuation, image = "A picture of", " a cat", tiny_image(0)
        got = wb.loglikelihood(vlm, [(context, continuation)], images=[[image]], cache=False)
        n_ctx = vlm.processor(text=["<image>" + context], images=[[image]], return_tensors="pt")["input_ids"].shape[1]
        enc = vlm.processor(text=["<image>" + context + continuation], images=[[image]], return_tensors="pt")
        with torch.inference_mode():
            logits = vlm.hf(**enc).logits[0].float()
        ids = enc["input_ids"][0]
        manual = float(torch.log_softmax(logits[n_ctx - 1:-1], -1).gather(1, ids[n_ctx:, None]).sum())
        assert abs(got.logprob[0] - manual) < 1e-4
        # the projector's output is what image tokens carry: captured at the declared path
        cache = wb.capture(vlm, ["Describe it."], images=[[image]], sites=["projector"])
        assert cache["projector"].shape[-1] == vlm.hf.config.text_config.hidden_size
    finally:
        unregister_family("toy-vipllava")
    assert "toy-vipllava" not in vlm_families()


def test_an_inspection_method_written_outside_the_package_follows_the_recipe():
    """The inspection-method recipe of docs/architecture.md, followed from outside the package with
    public names only: sites through ``site_adapter``, activations through ``wb.capture``, an edit
    through the hooks (``add_edit_hook`` kept by ``intervention``), a ``Result`` with ``record`` provenance. Its numbers are
    checked against transformers' own hidden states and a hand-made edit."""
    from dataclasses import dataclass

    from workbench.inspect.hooks import add_edit_hook, intervention
    from workbench.inspect.sites import site_adapter
    from workbench.provenance import record
    from workbench.results import Result
    from workbench.testing import tiny_model

    @dataclass
    class NormResult(Result):
        def summary(self):
            return self.frame

    def residual_norms(model, text):
        """Per layer: the mean L2 norm of resid_post over the text's tokens."""
        ad = site_adapter(model)
        cache = wb.capture(model, [text], sites=["resid_post"])
        rows = [{"layer": layer, "norm": float(cache["resid_post", layer][0].norm(dim=-1).mean())}
                for layer in range(ad.n_layers)]
        return NormResult(frame=pd.DataFrame(rows), provenance=record(model, method="residual_norms"))

    model = tiny_model("llama")
    res = residual_norms(model, "The cat sat on the mat")
    ids = model.tokenizer("The cat sat on the mat", return_tensors="pt")
    with torch.inference_mode():
        hidden = model.hf(**ids, output_hidden_states=True).hidden_states
    # hidden_states[L + 1] is the output of layer L, except the last, which transformers returns
    # after the final norm: compare the layers before it exactly
    for layer in range(model.hf.config.num_hidden_layers - 1):
        expected = float(hidden[layer + 1][0].norm(dim=-1).mean())
        assert res.frame.norm[layer] == pytest.approx(expected, rel=1e-6)
    assert res.provenance["method"] == "residual_norms" and res.summary().shape[0] == model.hf.config.num_hidden_layers

    # an edit through the public hooks: zeroing resid_post of layer 0 changes layer 0's norm to 0
    def zero(x):
        return torch.zeros_like(x)

    with intervention(model, {"method": "zero resid_post 0"}, [add_edit_hook(model, "resid_post", 0, zero)]):
        edited = residual_norms(model, "The cat sat on the mat")
    assert edited.frame.norm[0] == 0.0 and residual_norms(model, "The cat sat on the mat").frame.norm[0] > 0
