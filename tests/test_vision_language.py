"""Vision-language models on tiny random models of four families (LLaVA, PaliGemma, Gemma 3
multimodal, Idefics3 / SmolVLM), built from configs with their real processors assembled offline."""
from __future__ import annotations

import json

import numpy as np

import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.vision.capture import edit_image_tokens, image_attention, verify_vision
from workbench.vision.scoring import collate, forward
from workbench.testing import save_tiny_vlm, tiny_image, tiny_model, tiny_vlm, vlm_families

# every registered vision-language family with a tiny model: a new family's file is all it takes
FAMILIES = vlm_families()
assert {"llava", "paligemma", "gemma3_vl", "idefics3", "qwen2_vl"} <= set(FAMILIES)


def test_families_are_registered():
    assert set(FAMILIES) <= set(vlm_families())


@pytest.fixture(scope="module", params=FAMILIES)
def vlm(request):
    return tiny_vlm(request.param)


@pytest.mark.parametrize("family", FAMILIES)
def test_load_from_folder_with_processor_and_fingerprint(tmp_path, family):
    folder = save_tiny_vlm(tmp_path / "m", family)
    a, b = wb.load_model(folder), wb.load_model(folder)
    assert a.kind == "vision-language" and a.processor is not None
    assert a.fingerprint_id == b.fingerprint_id and "processor" in a.fingerprint
    # the same weights with another image normalisation see other inputs: another fingerprint
    cfg_path = tmp_path / "m" / "processor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["image_processor"]["image_mean"] = [0.1, 0.2, 0.3]
    cfg_path.write_text(json.dumps(cfg))
    c = wb.load_model(folder)
    assert c.fingerprint["weights_sha256"] == a.fingerprint["weights_sha256"]
    assert c.fingerprint_id != a.fingerprint_id


def test_hooked_outputs_bitwise_and_residuals_equal_hidden_states(vlm):
    res = verify_vision(vlm)
    assert res.ok, res.frame[~res.frame.ok]
    assert wb.inspect.verify(vlm).ok  # the public verify dispatches to it
    # the public API of the issue, checked by hand against output_hidden_states
    img = tiny_image(3)
    cache = wb.capture(vlm, ["Describe the picture."], images=[[img]], sites=["resid_post"])
    enc = vlm.processor(text=[cache.provenance["prompts"][0]], images=[[img]], return_tensors="pt")
    enc.pop("labels", None)
    with torch.inference_mode():
        hs = vlm.hf(**enc, output_hidden_states=True).hidden_states
    for layer in range(vlm.n_layers - 1):
        assert torch.equal(cache["resid_post", layer][0], hs[layer + 1][0])
    assert int(cache.image_tokens.sum()) > 0


def test_verify_vision_checks_the_towers_resid_post_and_catches_a_broken_hook(vlm, monkeypatch):
    """vision.resid_post is compared with the tower's hidden_states[L+1] at every layer; a hook
    that reads the layer's input instead of its output (vision.resid_post wired like resid_pre)
    must fail those rows, and only those."""
    from workbench.families import HookPoint
    from workbench.vision.capture import VisionParts

    res = verify_vision(vlm)
    post = res.frame[res.frame.site == "vision.resid_post"]
    assert res.ok and sorted(post.layer) == list(range(VisionParts(vlm).n_layers))
    correct = VisionParts.hook_point

    def broken(self, site, layer):
        hp = correct(self, site, layer)
        return HookPoint(hp.module, "in") if site == "vision.resid_post" else hp

    monkeypatch.setattr(VisionParts, "hook_point", broken)
    res = verify_vision(vlm)
    failed = res.frame[~res.frame.ok]
    assert not res.ok and set(failed.site) == {"vision.resid_post"}
    assert sorted(failed.layer) == list(range(VisionParts(vlm).n_layers))


def _manual_logprob(vlm, context, continuation, images):
    """From the model's logits on the processor's own output, without the workbench's batching."""
    marker = {"gemma3": "<start_of_image>", "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>"}.get(
        vlm.architecture, "<image>")
    prompt = marker * len(images) + context
    if vlm.architecture == "paligemma":  # prefix-LM: the continuation is the suffix (ends in EOS)
        enc = vlm.processor(text=[prompt], suffix=[continuation], images=[images], return_tensors="pt")
        n_ctx = int((enc["token_type_ids"][0] == 0).sum())
        end = enc["input_ids"].shape[1] - 1
        enc = {k: v[:, :end] if k in ("input_ids", "attention_mask", "token_type_ids") else v
               for k, v in enc.items() if k != "labels"}
    else:
        n_ctx = vlm.processor(text=[prompt], images=[images], return_tensors="pt")["input_ids"].shape[1]
        enc = vlm.processor(text=[prompt + continuation], images=[images], return_tensors="pt")
    with torch.inference_mode():
        logits = vlm.hf(**enc).logits[0].float()
    ids = enc["input_ids"][0]
    lp = torch.log_softmax(logits[n_ctx - 1:-1], -1).gather(1, ids[n_ctx:, None])
    return float(lp.sum()), len(ids) - n_ctx


def test_scoring_equals_manual_computation_and_batching(vlm):
    reqs = [("A picture of", " a cat"), ("The doctor said", " hello there"), ("Two images:", " the dog")]
    ims = [[tiny_image(0)], [tiny_image(1, pattern="split")], [tiny_image(2), tiny_image(4)]]
    df = wb.loglikelihood(vlm, reqs, images=ims, cache=False)
    assert list(df.columns[:4]) == ["context", "continuation", "logprob", "n_tokens"]
    for (ctx, cont), im, (_, row) in zip(reqs, ims, df.iterrows()):
        lp, n = _manual_logprob(vlm, ctx, cont, im)
        assert row.n_tokens == n
        assert abs(row.logprob - lp) < 1e-4
        assert abs(sum(row.token_logprobs) - row.logprob) < 1e-9
    alone = wb.loglikelihood(vlm, reqs[2:], images=ims[2:], cache=False)
    assert abs(alone.logprob[0] - df.logprob[2]) < 1e-4
    # the image matters: another picture, another score
    other = wb.loglikelihood(vlm, reqs[:1], images=[[tiny_image(7)]], cache=False)
    assert other.logprob[0] != df.logprob[0]


def test_cache_is_keyed_on_pixels(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    vlm = tiny_vlm("llava")
    from workbench.vision import scoring as vision
    calls = []
    real = vision.score_pairs
    monkeypatch.setattr(vision, "score_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    img = tiny_image(0)
    first = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]])
    again = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img.copy()]])
    assert len(calls) == 1 and again.logprob[0] == first.logprob[0]
    changed = img.copy()
    changed.putpixel((0, 0), (0, 0, 0) if changed.getpixel((0, 0)) != (0, 0, 0) else (255, 255, 255))
    third = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[changed]])
    assert len(calls) == 2 and third.images[0] != first.images[0]


def test_attention_heat_map_rows_sum_to_one(vlm):
    att = image_attention(vlm, "What is shown in the picture?", tiny_image(0, pattern="split"), layer=0)
    sums = att.maps.sum((1, 2))
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    assert ((att.share > 0) & (att.share <= 1 + 1e-6)).all()
    assert "<img src=\"data:image/png;base64," in att.to_html()


def test_patching_an_image_with_itself_changes_nothing(vlm):
    img = tiny_image(0)
    clean, same = edit_image_tokens(vlm, "A picture", [img], source_images=[img.copy()])
    assert torch.equal(clean, same)
    _, other = edit_image_tokens(vlm, "A picture", [img], source_images=[tiny_image(5)])
    assert not torch.equal(clean, other)
    _, zeroed = edit_image_tokens(vlm, "A picture", [img], how="zero", tokens=[0])
    assert not torch.equal(clean, zeroed)
    assert vlm.interventions == []  # the edit hook is gone afterwards


def test_errors_say_what_to_do():
    vlm = tiny_vlm("llava")
    with pytest.raises(InvalidInputError, match="one per request"):
        wb.loglikelihood(vlm, [("a", " b"), ("c", " d")], images=[[tiny_image(0)]])
    with pytest.raises(InvalidInputError, match="needs images"):
        wb.loglikelihood(vlm, [("a", " b")])
    with pytest.raises(InvalidInputError, match="image markers"):
        wb.loglikelihood(vlm, [("<image><image>a", " b")], images=[[tiny_image(0)]])
    with pytest.raises(WrongModelKindError, match="vision-language"):
        wb.loglikelihood(tiny_model("gpt2"), [("a", " b")], images=[[tiny_image(0)]])


def test_patch_attribution_ablation_matches_scoring_and_shapley_is_complete():
    from workbench.vision.attribution import image_patch_attribution
    from workbench.vision.capture import image_features_replaced
    vlm, img = tiny_vlm("llava"), tiny_image(0, pattern="split")
    res = image_patch_attribution(vlm, "A picture of", " a cat", img)
    assert res.grid.shape == (4, 4)
    full = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]

    def zero_token_5(x):
        x = x.clone()
        x[:, 5] = 0
        return x
    with image_features_replaced(vlm, zero_token_5):
        without = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]
    assert abs(float(res.grid.flatten()[5]) - (full - without)) < 1e-4
    shap = image_patch_attribution(vlm, "A picture of", " a cat", img, method="shapley", n_samples=2)
    assert shap.provenance["completeness_ok"] is True


def test_generation_with_images_is_seeded_and_greedy_matches_scoring():
    vlm, img = tiny_vlm("gemma3_vl"), tiny_image(1)
    a = wb.generate(vlm, ["Describe it:"], images=[[img]], max_new_tokens=4, do_sample=True, seed=3, cache=False)
    b = wb.generate(vlm, ["Describe it:"], images=[[img]], max_new_tokens=4, do_sample=True, seed=3, cache=False)
    assert a.completion[0] == b.completion[0]
    greedy = wb.generate(vlm, ["Describe it:"], images=[[img]], max_new_tokens=3, cache=False)
    text = greedy.completion[0]
    if text.strip():  # a greedy completion is what the scorer calls greedy
        assert bool(wb.loglikelihood(vlm, [("Describe it:", text)], images=[[img]], cache=False).is_greedy[0])


def test_counterfactual_image_bias_probe_on_synthetic_sets():
    from workbench.vision import image_bias, synthetic_counterfactuals
    items = synthetic_counterfactuals(n_sets=6)
    res = image_bias(tiny_vlm("paligemma"), items, [("This person works as a", " doctor")], cache=False)
    s = res.summary().query("level == 'caption'").set_index(["a", "b"])
    # the control images are the dark ones pixel for pixel: every within-set difference is 0
    assert (res.paired.query("a == 'control' and b == 'dark'")["diff"] == 0).all()
    assert s.loc[("control", "dark"), "p_value"] == 1.0
    # dark vs light really differ, and the statistic is the mean of the per-set differences
    d = res.paired.query("a == 'dark' and b == 'light'")["diff"]
    assert len(d) == 6 and (d != 0).all()
    assert abs(s.loc[("dark", "light"), "mean_diff"] - d.mean()) < 1e-12
    assert "p_adjusted" in s.columns


def test_loaders_read_the_published_layouts(tmp_path):
    import io

    import pandas as pd

    from workbench.vision import load_pairs, load_social_counterfactuals
    imgs = [tiny_image(i) for i in range(4)]
    for name, img in zip(["black_man", "black_woman", "white_man", "white_woman"], imgs):
        (tmp_path / "PAIRS" / "data" / "occupations" / "apron").mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / "PAIRS" / "data" / "occupations" / "apron" / f"{name}.png")
    p = load_pairs(tmp_path / "PAIRS")
    assert sorted(p.attribute) == ["black_man", "black_woman", "white_man", "white_woman"]
    assert set(p.set_id) == {"occupations/apron"} and set(p.gender) == {"man", "woman"}

    def png(img):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}
    pd.DataFrame(dict(image=[png(i) for i in imgs[:2]], dataset_segment=["physical-gender"] * 2,
                      a1_type=["physical"] * 2, a2_type=["gender"] * 2, counterfactual_set=["s1", "s1"],
                      caption=["A photo of a doctor"] * 2, a1=["tattooed", "tattooed"], a2=["man", "woman"],
                      a1a2=["tattooed man", "tattooed woman"])).to_parquet(tmp_path / "sc.parquet")
    sc = load_social_counterfactuals(tmp_path / "sc.parquet")
    assert list(sc.attribute) == ["tattooed man", "tattooed woman"]
    assert sc.image[0].tobytes() == imgs[0].tobytes()


def test_logit_lens_at_image_and_text_positions_ends_at_the_logits(vlm):
    from workbench.vision.capture import image_logit_lens
    img = tiny_image(2)
    df = image_logit_lens(vlm, "A cat", [img], k=1)
    last = df[df.layer == vlm.n_layers - 1]
    cache = wb.capture(vlm, ["A cat"], images=[[img]], sites=["logits"])
    probs = torch.softmax(cache["logits"][0].float(), -1)
    n = len(last)
    assert torch.allclose(torch.tensor(list(last.top_probs.str[0])), probs[:n].max(-1).values, atol=1e-4)
    assert last.is_image.sum() == int(cache.image_tokens.sum())


def test_capture_with_images_refuses_what_it_cannot_do(tmp_path):
    vlm = tiny_vlm("llava")
    with pytest.raises(InvalidInputError, match="not supported with images"):
        wb.capture(vlm, ["A cat"], images=[[tiny_image(0)]], max_new_tokens=2)
    with pytest.raises(InvalidInputError, match="not supported with images"):
        wb.capture(vlm, ["A cat"], images=[[tiny_image(0)]], out=tmp_path / "shards")


def test_idefics3_tiles_map_to_the_mosaic_in_the_processors_order():
    """Idefics3 splits an image into 2x2 tiles plus a global tile: the mosaic cell of each local
    tile holds the tokens that follow that tile's <row_r_col_c> marker in the text."""
    from workbench.vision.attribution import image_patch_attribution
    from workbench.vision.layout import image_token_layout
    vlm, img = tiny_vlm("idefics3"), tiny_image(0, pattern="split")
    cache = wb.capture(vlm, ["A cat"], images=[[img]], sites=["projector", "vision.embed"])
    assert cache["projector"].shape[:2] == (5, 4) and cache["vision.embed"].shape[0] == 5
    layout = image_token_layout(vlm, img, int(cache.image_tokens.sum()))
    assert (layout.rows, layout.cols, layout.n_tiles) == (2, 2, 5)
    index, glob = layout.grids(torch.arange(20))
    toks = cache.str_tokens[0]
    image_rank = cache.image_tokens[0].long().cumsum(0) - 1  # position -> index among image tokens
    for r in range(2):
        for c in range(2):
            first = toks.index(f"<row_{r + 1}_col_{c + 1}>") + 1
            assert int(index[2 * r, 2 * c]) == int(image_rank[first])
    assert int(glob[0, 0]) == int(image_rank[toks.index("<global-img>") + 1]) == 16
    # patch attribution over all tiles: the mosaic cell of token 5 is zeroing token 5 in text order
    res = image_patch_attribution(vlm, "A picture of", " a cat", img)
    assert res.grid.shape == (4, 4) and res.global_grid.shape == (2, 2)
    full = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]

    def zero_token_5(x):
        x = x.clone()
        x.reshape(-1, x.shape[-1])[5] = 0
        return x
    from workbench.vision.capture import image_features_replaced
    with image_features_replaced(vlm, zero_token_5):
        without = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]
    cell = res.frame.query("token == 5").iloc[0]
    assert abs(cell.attribution - (full - without)) < 1e-4 and cell.grid == "image"
    assert abs(float(res.grid[int(cell.row), int(cell.col)]) - cell.attribution) < 1e-12


def test_qwen2_vl_keeps_the_aspect_ratio_and_uses_multimodal_positions():
    """Qwen2-VL: a wide image gets a wide token grid (heat map and attribution follow it); the
    model's M-RoPE positions of the image tokens are not the plain 0..n-1, and the workbench's
    scores equal the model's own forward (which computes them) within 1e-4."""
    from workbench.vision.attribution import image_patch_attribution
    vlm, wide = tiny_vlm("qwen2_vl"), tiny_image(1, size=(64, 16), pattern="split")
    res = image_patch_attribution(vlm, "A picture of", " a cat", wide)
    rows, cols = res.grid.shape
    assert cols > rows and res.global_grid is None
    att = image_attention(vlm, "What is shown in the picture?", wide, layer=0)
    assert tuple(att.maps.shape[1:]) == (rows, cols)
    enc = vlm.processor(text=["<|vision_start|><|image_pad|><|vision_end|>A cat"], images=[[wide]], return_tensors="pt")
    pos, _ = vlm.hf.model.get_rope_index(enc["input_ids"], mm_token_type_ids=enc["mm_token_type_ids"],
                                         image_grid_thw=enc["image_grid_thw"], attention_mask=enc["attention_mask"])
    assert pos.shape[0] == 3 and not torch.equal(pos[1], pos[2])  # rows and columns differ on the image
    # the image tokens share one time position, so the temporal row is not 0..n-1
    assert not torch.equal(pos[0, 0], torch.arange(enc["input_ids"].shape[1]))


@pytest.mark.parametrize("family", ["llava", "idefics3", "qwen2_vl"])
def test_prompt_token_attribution_beside_the_image(family):
    """Features are the context's text tokens only (not image, tile or marker tokens); ablating
    one equals rescoring with that token replaced by the baseline; Shapley is complete."""
    from workbench.vision.prompt import prompt_token_attribution
    from workbench.vision.scoring import encode_pairs
    vlm, img = tiny_vlm(family), tiny_image(0)
    res = prompt_token_attribution(vlm, "The doctor said", " hello", img, random_check=False)
    assert "".join(res.frame.token) == "The doctor said"
    (whole, n_ctx, _), = encode_pairs(vlm, [("The doctor said", " hello")], [[img]])
    ids = whole["input_ids"][0]

    def logprob(edited):
        with torch.inference_mode():
            logits = forward(vlm, {**whole, "input_ids": edited[None]}).logits[0].float()
        return float(torch.log_softmax(logits[n_ctx - 1:-1], -1).gather(1, ids[n_ctx:, None]).sum())
    pos = int(res.frame.position[1])
    edited = ids.clone()
    edited[pos] = res.provenance["baseline_id"]
    assert abs(res.frame.attribution[1] - (logprob(ids) - logprob(edited))) < 1e-4
    shap = prompt_token_attribution(vlm, "The doctor said", " hello", img, method="shapley", n_samples=2,
                                    random_check=False)
    assert bool(shap.sanity.set_index("check").loc["completeness", "ok"])


def test_image_attribution_randomised_model_check():
    """The randomised-model check of text attribution, on image patches: a weight-randomised copy
    (the model itself untouched) gives other attributions, and their rank correlation is reported."""
    from workbench.vision.attribution import image_patch_attribution
    vlm, img = tiny_vlm("llava"), tiny_image(0, pattern="split")
    before = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]
    res = image_patch_attribution(vlm, "A picture of", " a cat", img)
    checks = res.sanity.set_index("check")
    assert set(checks.index) == {"completeness", "randomised model"}
    from scipy.stats import spearmanr
    rho = spearmanr(res.frame.attribution, res.frame.attribution_random).statistic
    assert abs(checks.loc["randomised model", "value"] - rho) < 1e-9
    assert not (res.frame.attribution == res.frame.attribution_random).all()
    after = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[img]], cache=False).logprob[0]
    assert after == before
    assert image_patch_attribution(vlm, "A picture of", " a cat", img, random_check=False).sanity.shape[0] == 1


def test_image_counterfactual_probe_spec_matches_image_bias_and_compares():
    from workbench.vision import image_bias, synthetic_counterfactuals
    items = synthetic_counterfactuals(n_sets=5)
    captions = [("This person works as a", " doctor"), ("This person is", " kind")]
    vlm = tiny_vlm("llava")
    res = wb.run_probe("image_counterfactual", vlm, data=items, captions=captions, cache=False)
    assert "image_counterfactual" in set(wb.list_probes().probe)
    direct = image_bias(vlm, items, captions, cache=False).summary()
    s = res.summary().set_index("category")
    # one analysis behind both doors: the same rows, statistics and Benjamini-Hochberg families
    s = s[s.metric == "mean_diff"]   # (the probe adds its n_skipped row)
    assert len(direct) == len(s) and set(direct.level) == {"pair", "caption"}
    for _, row in direct.iterrows():
        got = s.loc[f"{row.a} - {row.b}" + ("" if row.caption is None else f" | {row.caption}")]
        assert abs(got.value - row.mean_diff) < 1e-9 and abs(got.p_value - row.p_value) < 1e-12
        assert abs(got.p_adjusted - row.p_adjusted) < 1e-12 and got.n == row.n_sets
    # the pairs' rows are one family: adjusting them does not depend on how many captions there are
    pair_rows = direct[direct.level == "pair"]
    assert np.allclose(pair_rows.p_adjusted, wb.stats.benjamini_hochberg(pair_rows.p_value.values))
    assert (res.items.query("pair == 'control - dark'")["diff"] == 0).all()
    assert s.loc["control - dark", "p_value"] == 1.0
    # per pair, each set's differences are averaged over the captions first
    per_set = res.items.query("pair == 'dark - light'").groupby("set_id")["diff"].mean()
    assert abs(s.loc["dark - light", "value"] - per_set.mean()) < 1e-12
    assert isinstance(res.items.image_a[0], str) and res.provenance["data"]["n_scored"] == len(res.items)
    other = wb.run_probe("image_counterfactual", tiny_vlm("llava", seed=1), data=items, captions=captions,
                         cache=False)
    cmp = wb.compare(res, other)  # paired by item (set, pair, caption) across the two models
    assert set(cmp.metric) >= {"mean_diff", "pct_a_higher"}
    with pytest.raises(WrongModelKindError, match="vision-language"):
        wb.run_probe("image_counterfactual", tiny_model("gpt2"), data=items, captions=captions, cache=False)
    with pytest.raises(InvalidInputError, match="captions"):
        wb.run_probe("image_counterfactual", vlm, data=items, cache=False)


# -- bad image files: refused at the door, naming the file ------------------------------------------

def _pairs_folder(root, damage=None):
    """A PAIRS layout (two sets of two images); ``damage(path)`` spoils white_woman of set 'b'."""
    for k, scenario in enumerate(("a", "b")):
        for j, name in enumerate(("black_woman", "white_woman")):
            f = root / "data" / "occupations" / scenario / f"{name}.png"
            f.parent.mkdir(parents=True, exist_ok=True)
            tiny_image(2 * k + j).save(f)
    bad = root / "data" / "occupations" / "b" / "white_woman.png"
    if damage:
        damage(bad)
    return root, bad


def _flip_a_byte_in_the_pixels(f):
    raw = bytearray(f.read_bytes())
    raw[raw.index(b"IDAT") + 10] ^= 0xFF
    f.write_bytes(bytes(raw))


BAD_FILES = {
    "truncated": (lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]), "corrupt"),
    "a broken checksum": (_flip_a_byte_in_the_pixels, "corrupt"),
    "text named .png": (lambda f: f.write_text("not a picture"), "not an image PIL can read"),
    "empty": (lambda f: f.write_bytes(b""), "empty"),
    "missing": (lambda f: f.unlink(), "does not exist"),
    "a folder": (lambda f: (f.unlink(), f.mkdir()), "not a file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_image_files_are_refused_before_any_model_work(tmp_path, case):
    from workbench.errors import DataError
    from workbench.vision import image_bias, load_pairs
    damage, says = BAD_FILES[case]
    folder, bad = _pairs_folder(tmp_path / "PAIRS", damage)
    vlm = tiny_vlm("llava")
    forwards = []
    hook = vlm.hf.register_forward_pre_hook(lambda *a: forwards.append(1))
    captions = [("This person works as a", " doctor")]
    try:
        if case != "missing":  # load_pairs lists the files that are there
            with pytest.raises(DataError, match=f"occupations/b/white_woman: .*{bad}.* {says}"):
                image_bias(vlm, load_pairs(folder), captions, cache=False)
            with pytest.raises(DataError, match=f"occupations/b/white_woman: .*{bad}.* {says}"):
                wb.run_probe("image_counterfactual", vlm, data=folder, captions=captions, cache=False)
        table = load_pairs(_pairs_folder(tmp_path / "ok")[0])
        table.loc[table.path.str.endswith("b/white_woman.png"), "path"] = str(bad)  # a DataFrame of paths: same door
        for run in (lambda: image_bias(vlm, table, captions, cache=False),
                    lambda: wb.run_probe("image_counterfactual", vlm, data=table, captions=captions, cache=False)):
            with pytest.raises(DataError, match=f"occupations/b/white_woman: .*{bad}.* {says}"):
                run()
    finally:
        hook.remove()
    assert forwards == []


def test_bad_images_in_memory_and_in_parquet_are_refused_naming_them(tmp_path):
    import io

    import pandas as pd
    from PIL import Image

    from workbench.errors import DataError
    from workbench.vision import image_bias, load_social_counterfactuals, synthetic_counterfactuals
    vlm = tiny_vlm("llava")
    _, bad = _pairs_folder(tmp_path / "PAIRS", BAD_FILES["truncated"][0])
    lazy = Image.open(bad)  # PIL opens lazily: the damage shows only when the pixels are read
    with pytest.raises(DataError, match=r"images\[0\]\[0\].*white_woman.png.*corrupt or truncated"):
        wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[lazy]], cache=False)
    items = synthetic_counterfactuals(n_sets=2).astype({"image": object})
    items.at[3, "image"] = "face.png"
    with pytest.raises(DataError, match="synthetic-1/dark: the image column holds str 'face.png'.*'path' column"):
        image_bias(vlm, items, [("A", " b")], cache=False)
    items.at[3, "image"] = Image.open(bad)
    with pytest.raises(DataError, match="synthetic-1/dark .*white_woman.png.*corrupt or truncated"):
        wb.run_probe("image_counterfactual", vlm, data=items, captions=[("A", " b")], cache=False)
    good = io.BytesIO()
    tiny_image(0).save(good, format="PNG")
    cells = [{"bytes": good.getvalue(), "path": None}, {"bytes": b"\x89PNG but not really", "path": None}]
    pd.DataFrame(dict(image=cells, counterfactual_set=["s1", "s1"], caption=["A doctor"] * 2, a1=["x", "y"],
                      dataset_segment=["race"] * 2)).to_parquet(tmp_path / "sc.parquet")
    with pytest.raises(DataError, match=r"sc.parquet row 1: the image bytes are not an image"):
        load_social_counterfactuals(tmp_path / "sc.parquet")
    (tmp_path / "not.parquet").write_text("hello")
    with pytest.raises(DataError, match="not.parquet is not a readable parquet file"):
        load_social_counterfactuals(tmp_path / "not.parquet")


def test_wb_vision_is_reachable_from_a_bare_import():
    """Notebook 09 and docs/vision_language.md write ``wb.vision.image_bias`` after ``import
    workbench as wb``; run in a fresh interpreter so no earlier import has loaded the subpackage."""
    import subprocess
    import sys
    code = "import workbench as wb; print(wb.vision.image_bias.__module__, 'vision' in dir(wb))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["workbench.vision.bias", "True"]


def test_image_attention_shows_tokens_as_text_in_its_repr_widget_and_summary():
    """Notebook 09 printed the result's dataclass repr with byte-level markers ('Ġis'); the repr,
    the widget's buttons and the summary all read tokens through the one display rule."""
    from workbench.display import show_tokens
    from workbench.testing import tiny_image, tiny_vlm
    att = wb.vision.image_attention(tiny_vlm("llava"), "What is shown in the picture?", tiny_image(0), layer=0)
    assert any("Ġ" in t for t in att.tokens)                  # the tokenizer's pieces are kept in the data
    for text in (repr(att), att.to_html(), att.summary().to_string()):
        assert not set("ĠĊ▁") & set(text), text[:200]
    assert str(show_tokens(att.tokens)) in repr(att)
