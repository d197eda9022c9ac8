"""Probing classifiers, direct logit attribution and head-type scores on tiny models."""
import random

import matplotlib
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, UnsupportedSiteError, WorkbenchError, WrongModelKindError
from workbench.testing import CAUSAL_ARCHS, induction_model, tiny_model

matplotlib.use("Agg")

PROMPT = "The doctor said that"


def _real_logits(model, prompt):
    """The model's own last-position logits, from a plain forward pass (no workbench hooks)."""
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.hf(input_ids=ids).logits[0, -1].double()


# -- direct logit attribution --------------------------------------------------------------------

@pytest.mark.parametrize("arch", CAUSAL_ARCHS)
def test_dla_sums_to_the_real_logit_difference(tiny, arch):
    m = tiny(arch)
    tok = m.tokenizer
    he, car = tok.convert_tokens_to_ids("Ġhe"), tok.convert_tokens_to_ids("Ġcar")
    res = wb.inspect.direct_logit_attribution(m, PROMPT, target=he, baseline=car)
    f = res.to_frame()
    assert f.columns.tolist() == ["component", "layer", "head", "contribution"]
    logits = _real_logits(m, PROMPT)
    real = float(logits[he] - logits[car])
    assert res.total == pytest.approx(real, abs=1e-5)
    tol = 1e-5 * max(1.0, abs(real))
    assert abs(res.blocks()["contribution"].sum() - real) < tol
    assert abs(res.error) < tol
    # the heads (plus the output projection's bias) add up to each layer's attention block
    for layer in range(m.n_layers):
        fine = f[(f["layer"] == layer) & f["component"].isin(["head", "attn_bias"])]["contribution"].sum()
        block = f[(f["layer"] == layer) & (f["component"] == "attn")]["contribution"].item()
        assert fine == pytest.approx(block, abs=tol)
    assert len(res.heads()) == m.n_layers * wb.inspect.adapter(m).n_heads
    # and the plain logit (no baseline) decomposes too
    single = wb.inspect.direct_logit_attribution(m, PROMPT, target=he, baseline=None)
    assert single.total == pytest.approx(float(logits[he]), abs=1e-5)
    assert abs(single.blocks()["contribution"].sum() - float(logits[he])) < 1e-5 * max(1.0, abs(float(logits[he])))


@pytest.mark.parametrize("arch", ["gpt2", "phi", "gpt_neox"])
def test_dla_sums_with_nonzero_biases(arch):
    """Random init leaves GPT-2's biases at zero; with every bias set the sum must still hold and
    the bias rows must carry their share."""
    m = tiny_model(arch, seed=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.hf.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    res = wb.inspect.direct_logit_attribution(m, PROMPT, " he", " car")
    logits = _real_logits(m, PROMPT)
    he, car = m.tokenizer.convert_tokens_to_ids(["Ġhe", "Ġcar"])
    real = float(logits[he] - logits[car])
    assert res.total == pytest.approx(real, abs=1e-5)
    assert res.blocks()["contribution"].sum() == pytest.approx(real, abs=1e-5 * max(1.0, abs(real)))
    f = res.to_frame()
    assert f[f["component"] == "attn_bias"]["contribution"].abs().min() > 0
    assert f[f["component"] == "final_norm_bias"]["contribution"].abs().item() > 0


def test_dla_bias_components_are_reported(tiny):
    gpt2 = wb.inspect.direct_logit_attribution(tiny("gpt2"), PROMPT, " he", " car").to_frame()
    assert {"embed", "pos_embed", "attn", "head", "attn_bias", "mlp", "final_norm_bias"} <= set(gpt2["component"])
    phi = wb.inspect.direct_logit_attribution(tiny("phi"), PROMPT, " he", " car").to_frame()
    assert "unembed_bias" in set(phi["component"])  # Phi's LM head has a bias
    llama = wb.inspect.direct_logit_attribution(tiny("llama"), PROMPT, " he", " car").to_frame()
    assert not {"pos_embed", "attn_bias", "final_norm_bias", "unembed_bias"} & set(llama["component"])


def test_dla_head_matches_a_hand_computation(tiny):
    """One head's contribution computed from the weights (TransformerLens style: z_h W_O[h], through
    ln_f with the scale of the clean run, onto W_U[he] - W_U[car]) equals the reported one."""
    m = tiny("gpt2")
    tok = m.tokenizer
    he, car = tok.convert_tokens_to_ids("Ġhe"), tok.convert_tokens_to_ids("Ġcar")
    cache = wb.capture(m, [PROMPT], sites=["z", "resid_post"], positions="last", progress=False)
    layer, head = 1, 2
    z = cache["z", layer][0, 0, head].double()
    W_O = m.hf.transformer.h[layer].attn.c_proj.weight.detach().double()[head * 8:(head + 1) * 8]
    out = z @ W_O
    r = cache["resid_post", 1][0, 0].double()
    ln = m.hf.transformer.ln_f
    scale = (r.var(unbiased=False) + ln.eps).sqrt()
    normed = (out - out.mean()) / scale * ln.weight.detach().double()
    W_U = m.hf.lm_head.weight.detach().double()
    expected = float(normed @ (W_U[he] - W_U[car]))
    f = wb.inspect.direct_logit_attribution(m, PROMPT, he, car).heads()
    got = f[(f["layer"] == layer) & (f["head"] == head)]["contribution"].item()
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_dla_summary_and_plots(tiny):
    res = wb.inspect.direct_logit_attribution(tiny("llama"), PROMPT, " he", " car")
    s = res.summary(k=4)
    assert len(s) == 4 and "attn" not in set(s["component"])
    assert s["contribution"].abs().is_monotonic_decreasing
    assert res.provenance["fingerprint"] and "frozen" in res.provenance["final_norm"]
    assert res.plot().get_title().startswith("direct logit attribution")
    ax = res.plot(level="heads")
    assert len(ax.figure.axes) == 2  # the heat map and its colour bar


def test_dla_refuses_bad_inputs(tiny):
    m = tiny("gpt2")
    with pytest.raises(WrongModelKindError, match="causal"):
        wb.inspect.direct_logit_attribution(tiny("bert"), "The [MASK] sat", " he", " she")
    with pytest.raises(InvalidInputError, match="same token"):
        wb.inspect.direct_logit_attribution(m, PROMPT, " he", " he")
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        wb.inspect.direct_logit_attribution(m, PROMPT, 10 ** 6, " he")
    with pytest.raises(InvalidInputError, match="non-empty"):
        wb.inspect.direct_logit_attribution(m, "", " he", " she")
    with pytest.warns(UserWarning, match="first token"):  # " she" is two tokens for the tiny tokenizer
        res = wb.inspect.direct_logit_attribution(m, PROMPT, " he", " she")
    assert res.provenance["baseline"] == "Ġs"


# -- head scores --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted():
    return wb.inspect.head_scores(induction_model())


def test_head_scores_find_the_planted_induction_and_previous_token_heads(planted):
    f = planted.to_frame()
    assert f.columns.tolist() == ["layer", "head", "kind", "score"]
    assert f["score"].between(0, 1).all()
    ind = f[f["kind"] == "induction"].set_index(["layer", "head"])["score"]
    assert ind.idxmax() == (1, 1) and ind[(1, 1)] > 0.8
    assert ind.drop((1, 1)).max() < 0.1
    prev = f[f["kind"] == "previous_token"].set_index(["layer", "head"])["score"]
    assert prev.idxmax() == (0, 0) and prev[(0, 0)] > 0.95
    assert prev.drop((0, 0)).max() < 0.2
    # the induction head looks one past the earlier occurrence, not at it
    dup = f[f["kind"] == "duplicate_token"].set_index(["layer", "head"])["score"]
    assert dup[(1, 1)] < 0.1
    assert planted.top("induction", 1)[["layer", "head"]].values.tolist() == [[1, 1]]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_random_models_have_no_induction_head(tiny, arch):
    f = wb.inspect.head_scores(tiny(arch)).to_frame()
    assert f[f["kind"] == "induction"]["score"].max() < 0.1
    assert f[f["kind"] == "previous_token"]["score"].max() < 0.3


def test_head_scores_are_seeded_and_plotted(tiny, planted):
    m = tiny("llama")
    a = wb.inspect.head_scores(m, seq_len=12, n_seqs=2, seed=3).to_frame()
    b = wb.inspect.head_scores(m, seq_len=12, n_seqs=2, seed=3).to_frame()
    assert a.equals(b)
    assert not a.equals(wb.inspect.head_scores(m, seq_len=12, n_seqs=2, seed=4).to_frame())
    fig = planted.plot()
    assert len(fig.axes) == 8  # four heat maps, each with its colour bar
    assert planted.provenance["seed"] == 0 and planted.provenance["fingerprint"]
    assert set(planted.summary()["kind"]) == {"previous_token", "first_token", "duplicate_token", "induction"}


def test_head_scores_refuse_bad_inputs(tiny):
    with pytest.raises(InvalidInputError, match="seq_len"):
        wb.inspect.head_scores(tiny("gpt2"), seq_len=1)
    with pytest.raises(WrongModelKindError):
        wb.inspect.head_scores(tiny("bert"))
    with pytest.warns(UserWarning, match="sliding window"):
        wb.inspect.head_scores(tiny("gemma3_text"), seq_len=20, n_seqs=1)


# -- probes -------------------------------------------------------------------------------------

ANIMALS, THINGS = ["cat", "dog", "fox", "ball"], ["car", "city", "park", "music"]


def _texts(n=96, seed=0):
    """Texts ending in a word; the label (animal or not) is a function of that last word."""
    rng = random.Random(seed)
    texts, labels, words = [], [], []
    for _ in range(n):
        w = rng.choice(ANIMALS + THINGS)
        v = rng.choice(ANIMALS + THINGS)
        texts.append(f"My friend and the {v} saw the {w}")
        labels.append("animal" if w in ANIMALS else "thing")
        words.append(w)
    return texts, labels, words


def test_probe_reads_a_learnable_label(tiny):
    """The label (animal or thing) is a function of the last word, which is the token the probe
    reads: accuracy is high, and so is Hewitt & Liang's control task (8 word types, each with one
    random label, memorised by the same probe), so selectivity is near 0. Only the shuffled-labels
    control, at chance by construction, would call this probe selective."""
    texts, labels, _ = _texts()
    res = wb.inspect.linear_probe(tiny("gpt2"), texts, labels)
    s = res.summary()
    assert s.columns.tolist() == ["layer", "accuracy", "control_accuracy", "selectivity", "ci_low", "ci_high",
                                  "majority_baseline", "n", "shuffled_control_accuracy", "shuffled_selectivity"]
    assert (s["accuracy"] > 0.9).all()
    assert (s["control_accuracy"] > 0.9).all() and (s["selectivity"].abs() < 0.1).all()
    assert (s["shuffled_control_accuracy"] < 0.65).all() and (s["shuffled_selectivity"] > 0.3).all()
    assert (s["accuracy"] > s["majority_baseline"]).all()
    assert ((s["ci_low"] <= s["accuracy"]) & (s["accuracy"] <= s["ci_high"])).all()
    assert (s["n"] == len(texts)).all()
    p = res.provenance
    assert p["site"] == "resid_post" and p["seed"] == 0 and p["n"] == len(texts) and p["fingerprint"]
    assert p["control_types"]["n_types"] == 8 and p["control_types"]["texts_with_recurring_type"] == len(texts)


def test_probe_selectivity_is_near_zero_on_shuffled_labels(tiny):
    """Labels shuffled across texts carry nothing to read: accuracy and the shuffled control are
    both chance, so shuffled_selectivity is noise around 0 (n=120: about +-0.07 per run; averaged
    over 4). The type control is memorised (the probe learns the 8 words), so selectivity is far
    below 0: the probe could memorise, and the task gave it nothing to memorise."""
    texts, labels, _ = _texts(n=120)
    m = tiny("gpt2")
    sel = []
    for seed in range(4):
        shuffled = list(labels)
        random.Random(seed).shuffle(shuffled)
        s = wb.inspect.linear_probe(m, texts, shuffled).summary()
        assert s["shuffled_selectivity"].abs().max() < 0.15
        assert (s["accuracy"] < s["majority_baseline"] + 0.15).all()
        assert (s["selectivity"] < -0.2).all()
        sel.append(s["shuffled_selectivity"].mean())
    assert abs(sum(sel) / len(sel)) < 0.06


def test_probe_control_task_catches_a_memorising_probe(tiny):
    """Hewitt & Liang's control task as the paper defines it: a probe that memorises word types
    scores high on it, the shuffled-labels control does not show it. First a 1-nearest-neighbour
    classifier on word identity, on the module's own labellings and the probe's folds; then the
    linear probe itself on layer 0 of a tiny GPT-2, where the read token's activation is its
    word's embedding plus a little context (the type is the token at the probed position by default)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from workbench.inspect.linear_probe import _shuffled_labels, _type_control_labels

    texts, labels, words = _texts()
    codes = np.unique(labels, return_inverse=True)[1]
    one_hot = (np.array(words)[:, None] == np.array(ANIMALS + THINGS)[None, :]).astype(float)
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(one_hot, codes))

    def nn_accuracy(y):
        right = [(KNeighborsClassifier(1).fit(one_hot[tr], y[tr]).predict(one_hot[te]) == y[te]).sum() for tr, te in splits]
        return sum(right) / len(y)

    rng = np.random.default_rng(0)
    type_control = np.mean([nn_accuracy(_type_control_labels(codes, words, rng)) for _ in range(5)])
    shuffled = np.mean([nn_accuracy(_shuffled_labels(codes, rng)) for _ in range(5)])
    assert nn_accuracy(codes) == 1.0
    assert type_control == 1.0          # every held-out word was seen in training with its label
    assert shuffled < 0.65              # chance: 1-NN memorised nothing it can use

    m = tiny("gpt2")
    default = wb.inspect.linear_probe(m, texts, labels, layers=[0]).summary()
    by_word = wb.inspect.linear_probe(m, texts, labels, layers=[0], control_groups=words).summary()
    with pytest.warns(UserWarning, match="no two texts share a type"):
        per_text = wb.inspect.linear_probe(m, texts, labels, layers=[0], control_groups=list(range(len(texts)))).summary()
    for s in (default, by_word):
        assert s["control_accuracy"].item() > 0.9 and s["selectivity"].item() < 0.1
        assert s["shuffled_control_accuracy"].item() < 0.65 and s["shuffled_selectivity"].item() > 0.3
    assert by_word["accuracy"].item() == default["accuracy"].item() == per_text["accuracy"].item()  # same folds
    assert per_text["control_accuracy"].item() < 0.65  # a type seen once cannot be memorised


def test_probe_selectivity_is_high_for_a_linearly_encoded_property(tiny):
    """The control can also pass: a label that is a linear function of the read activation (the
    sign of a random direction at layer 0) generalises to word types never seen in training,
    while one random label per type (88 types, many seen once, in 32 dimensions) does not, so
    selectivity is clearly positive."""
    m = tiny("gpt2")
    tok = m.tokenizer
    ends = sorted({e for t, i in tok.get_vocab().items() if (e := tok.convert_tokens_to_string([t])).strip().isalpha()
                   and tok("The dog saw the" + e)["input_ids"][-1] == i})  # texts that end in that one token
    rng = random.Random(0)
    texts = [f"The dog saw the{rng.choice(ends)}" for _ in range(120)]
    X = wb.capture(m, texts, sites=["resid_post"], layers=[0], positions="last", progress=False)["resid_post", 0]
    score = X[:, 0].double().numpy() @ np.random.default_rng(0).standard_normal(X.shape[-1])
    labels = np.where(score > np.median(score), "pos", "neg").tolist()
    res = wb.inspect.linear_probe(m, texts, labels)
    s = res.summary()
    assert res.provenance["control_types"]["n_types"] > 60
    assert (s["accuracy"] > 0.8).all() and (s["control_accuracy"] < 0.7).all() and (s["selectivity"] > 0.15).all()


def test_probe_control_task_without_types_says_so(tiny):
    """Where every text has the same token at the probed position (an encoder's [SEP]) there is no
    control task: NaN with a warning, never a constant labelling that any probe fits. Where no
    type recurs (position="mean": the type is the whole text), the warning says the control is at
    chance by construction."""
    texts, labels, words = _texts(n=40)
    with pytest.warns(UserWarning, match="at least two types"):
        s = wb.inspect.linear_probe(tiny("bert"), texts, labels, folds=4).summary()
    assert s["control_accuracy"].isna().all() and s["selectivity"].isna().all()
    assert s["shuffled_control_accuracy"].notna().all()
    s = wb.inspect.linear_probe(tiny("bert"), texts, labels, folds=4, control_groups=words).summary()
    assert s["control_accuracy"].notna().all()
    unique = [f"{t} number {i}" for i, t in enumerate(texts)]
    with pytest.warns(UserWarning, match="no two texts share a type"):
        wb.inspect.linear_probe(tiny("gpt2"), unique, labels, position="mean", folds=4, layers=[0])


def test_probe_mean_position_seed_and_plot(tiny):
    texts, labels, _ = _texts(n=40)
    m = tiny("llama")
    a = wb.inspect.linear_probe(m, texts, labels, position="mean", layers=-1, folds=4, seed=2)
    b = wb.inspect.linear_probe(m, texts, labels, position="mean", layers=[1], folds=4, seed=2)
    assert a.summary().equals(b.summary())
    assert a.summary()["layer"].tolist() == [1]
    assert a.provenance["position"] == "mean"
    ax = a.plot()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"probe accuracy", "selectivity",
                                                                    "majority baseline"}


def test_probe_per_head_site(tiny):
    texts, labels, _ = _texts(n=40)
    s = wb.inspect.linear_probe(tiny("gpt2"), texts, labels, site="z", folds=4).summary()
    assert len(s) == 2 and s["accuracy"].between(0, 1).all()


def test_probe_refuses_bad_inputs(tiny):
    m = tiny("gpt2")
    texts, labels, _ = _texts(n=20)
    cases = [
        (dict(labels=labels[:-1]), InvalidInputError, "one label per text"),
        (dict(labels=["a"] * 20), InvalidInputError, "single class"),
        (dict(labels=["a"] * 18 + ["b"] * 2), InvalidInputError, "fewer texts than folds"),
        (dict(labels=labels, layers=[5]), UnsupportedSiteError, "out of range"),
        (dict(labels=labels, layers=[]), UnsupportedSiteError, "empty"),
        (dict(labels=labels, site="attn_pattern"), InvalidInputError, "site must be one of"),
        (dict(labels=labels, position="first"), InvalidInputError, "position must be one of"),
        (dict(labels=labels, folds=1), InvalidInputError, "folds must be at least 2"),
        (dict(labels=labels[:10] + [None] * 10), InvalidInputError, "missing values"),
        (dict(labels=labels, control_groups=["x"] * 3), InvalidInputError, "one group"),
        (dict(labels=labels, control_groups=["x"] * 20), InvalidInputError, "single group"),
        (dict(labels=labels, control_groups=[None] + ["x", "y"] * 9 + ["x"]), InvalidInputError, "missing values"),
        (dict(labels=labels, control_groups=[["x"]] * 20), InvalidInputError, "hashable"),
        (dict(labels=labels, C=0), InvalidInputError, "C must be greater than 0"),
    ]
    for kwargs, err, msg in cases:
        with pytest.raises(err, match=msg):
            wb.inspect.linear_probe(m, texts, **kwargs)
        assert issubclass(err, WorkbenchError)
    with pytest.raises(InvalidInputError, match="list of strings"):
        wb.inspect.linear_probe(m, "one text", ["a"])
    with pytest.raises(UnsupportedSiteError, match="resid_mid"):
        wb.inspect.linear_probe(tiny("phi"), texts, labels, site="resid_mid")


# -- embedded models (facts established with benchmarks/interp.py) ---------------------------------

@pytest.mark.real_model
def test_smollm_dla_sums_and_has_induction_heads(smollm):
    res = wb.inspect.direct_logit_attribution(smollm, "The woman said that", " he", " she")
    logits = _real_logits(smollm, "The woman said that")
    he, she = smollm.tokenizer.convert_tokens_to_ids(["Ġhe", "Ġshe"])
    assert res.total == pytest.approx(float(logits[he] - logits[she]), abs=1e-3)
    assert abs(res.error) < 1e-4 * max(1.0, abs(res.total))
    assert res.total < 0  # " she" is preferred after "The woman said that"
    heads = wb.inspect.head_scores(smollm, seq_len=20, n_seqs=2)
    ind = heads.top("induction", 3)
    # L18H6 and L17H3/L17H4 score 0.9/0.77/0.73 on 8 x 40 tokens (benchmarks/interp.py)
    assert ind["score"].iloc[0] > 0.6 and set(ind["layer"]) <= {17, 18, 23}
    f = heads.to_frame()
    assert f[f["kind"] == "induction"]["score"].median() < 0.05


@pytest.mark.real_model
def test_gemma3_dla_sums_through_its_post_norms_and_has_an_induction_head(gemma):
    res = wb.inspect.direct_logit_attribution(gemma, "The man said that", " he", " she")
    assert abs(res.error) < 1e-4 * max(1.0, abs(res.total))
    f = res.to_frame()
    for layer in (0, 14):  # heads through the frozen post-attention norm add up to the block
        fine = f[(f["layer"] == layer) & (f["component"] == "head")]["contribution"].sum()
        assert fine == pytest.approx(f[(f["layer"] == layer) & (f["component"] == "attn")]["contribution"].item(),
                                     abs=1e-4)
    # L14H3 carries the pronoun's gender (6.0 of 4.1 logits here; benchmarks/interp.py)
    assert res.summary(k=1)[["layer", "head"]].values.tolist() == [[14, 3]]
    ind = wb.inspect.head_scores(gemma, seq_len=20, n_seqs=2).top("induction", 1)
    assert ind["score"].item() > 0.5  # L5H1: 0.84 on 8 x 40 tokens


def test_dla_on_a_bfloat16_model():
    """The norm's own rounding (bfloat16) must not make the norm look unknown; the sum then holds
    to bfloat16 precision."""
    m = tiny_model("llama", dtype=torch.bfloat16)
    res = wb.inspect.direct_logit_attribution(m, PROMPT, " he", " car")
    assert abs(res.error) < 1e-2 * max(1.0, abs(res.total))
