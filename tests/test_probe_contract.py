"""The probe contract: ``load(source, ctx)`` and ``score(model, items, ctx)`` with a
:class:`~workbench.probes.ProbeContext`, through the public registration, ``wb.run_probe`` and the
runner (with resume); and its deprecation path: a spec written to the old contract
(``load(source, skips, options)``, ``score(model, items, options, skips)``) still runs on the very
options dict it had, hidden keys included, gives the same results, and warns once."""
import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.probes import ProbeContext, ProbeSpec, SkipLog
from workbench.probes.api import unregister_probe
from workbench.stats import mean_metric
from workbench.testing import tiny_model

PAIRS = [("The keys to the cabinet", " are", " is"), ("The author of the books", " is", " are"),
         ("The dogs in the garden", " bark", " barks"), ("The cat near the trees", " sleeps", " sleep"),
         ("", " x", " y"), ("The girls by the door", " wait", " waits")] * 2
HIDDEN = {"cache", "_source"}


def _rows(source):
    return json.loads(open(source).read())


def _item(i, p, g, b):
    return {"item_id": i, "prefix": p, "good": g, "bad": b, "subject": "plural" if g in (" are", " bark", " wait")
            else "singular"}


def _scores(model, items, aggregate, cache):
    if aggregate not in ("sum", "mean"):
        raise InvalidInputError(f"aggregate must be 'sum' or 'mean', got {aggregate!r}")
    ll = wb.loglikelihood(model, [(p, c) for p, g, b in zip(items.prefix, items.good, items.bad) for c in (g, b)],
                          cache=cache)
    lp = (ll.logprob if aggregate == "sum" else ll.logprob / ll.n_tokens).to_numpy().reshape(-1, 2)
    return items.assign(lp_good=lp[:, 0], lp_bad=lp[:, 1], prefers_good=(lp[:, 0] > lp[:, 1]).astype(int))


def _metrics(options):
    return [mean_metric("pct_grammatical", "prefers_good", kind="binary", scale=100, ideal=100)]


def make_new(seen):
    """The toy probe written to the contract: what each call was handed goes to ``seen``."""
    def load(source, ctx):
        seen.append(("load", dict(ctx.options), ctx.source, ctx.cache))
        rows = []
        for i, (p, g, b) in enumerate(_rows(source)):
            if not p:
                ctx.skips.add(i, "empty prefix")
            else:
                rows.append(_item(i, p, g, b))
        return pd.DataFrame(rows), [source]

    def score(model, items, ctx):
        seen.append(("score", dict(ctx.options), ctx.source, ctx.cache, len(items)))
        ctx.skips.add("extra", "a row the scorer could not use", stage="score")
        return _scores(model, items, ctx.options["aggregate"], ctx.cache)

    return ProbeSpec(name="toy_new", description="toy agreement, new contract", load=load, score=score,
                     metrics=_metrics, categories=("subject",), kinds=("causal",), licence="CC0-1.0",
                     defaults={"aggregate": "sum"})


def make_old(seen):
    """The same toy probe written to the old contract (outside the package)."""
    def load(source, skips, options):
        seen.append(("load", options))
        rows = []
        for i, (p, g, b) in enumerate(_rows(source)):
            if not p:
                skips.add(i, "empty prefix")
            else:
                rows.append(_item(i, p, g, b))
        return pd.DataFrame(rows), [source]

    def score(model, items, options, skips):
        seen.append(("score", options))
        skips.add("extra", "a row the scorer could not use", stage="score")
        return _scores(model, items, options["aggregate"], options["cache"])

    return ProbeSpec(name="toy_old", description="toy agreement, old contract", load=load, score=score,
                     metrics=_metrics, categories=("subject",), kinds=("causal",), licence="CC0-1.0",
                     defaults={"aggregate": "sum"})


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "agreement.json"
    path.write_text(json.dumps(PAIRS))
    return path


@pytest.fixture
def probes():
    """Both toy probes registered (the old one warns at registration); removed afterwards."""
    seen_new, seen_old = [], []
    new = wb.register_probe(make_new(seen_new))
    with pytest.warns(DeprecationWarning, match=r"'toy_old' follows the old probe contract.*ctx\.source"):
        old = wb.register_probe(make_old(seen_old))
    yield new, old, seen_new, seen_old
    unregister_probe("toy_new")
    unregister_probe("toy_old")


def _same_result(a, b):
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.summary(), b.summary())
    pd.testing.assert_frame_equal(a.skipped, b.skipped)
    assert a.options == b.options and a.provenance["options"] == b.provenance["options"]
    assert a.provenance["data"] == b.provenance["data"]


def test_contract_read_from_the_signatures_or_given():
    seen = []
    new, old = make_new(seen), make_old(seen)
    assert new.contract is None and new.follows == 2 and old.follows == 1
    assert dataclasses.replace(old, contract=2).follows == 2           # an explicit value wins
    assert ProbeSpec("v", "", load=lambda *a: None, score=lambda *a: None, metrics=_metrics).follows == 1
    mixed = dataclasses.replace(new, score=old.score)                 # each function is read on its own
    assert mixed._contracts == (2, 1) and mixed.follows == 1
    assert ProbeSpec("o", "", load=new.load, score=lambda model, items, options, skips=None: items,
                     metrics=_metrics).follows == 1                    # fits both: read as the old one
    with pytest.raises(InvalidInputError, match="contract must be 2"):
        dataclasses.replace(new, contract=3)
    assert all(wb.probes.get_spec(n).follows == 2 for n in wb.probes.api.probe_names())  # every built-in


def test_new_contract_gets_no_hidden_keys_and_equals_the_old_one(probes, data):
    new, old, seen_new, seen_old = probes
    m = tiny_model("gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # warned at registration: not again at use
        a = wb.run_probe("toy_new", m, data=data, n_boot=200, aggregate="mean", cache=False)
        b = wb.run_probe("toy_old", m, data=data, n_boot=200, aggregate="mean", cache=False)
    _same_result(a, b)
    assert len(a.items) == 10 and list(a.skipped.reason) == ["empty prefix"] * 2 + ["a row the scorer could not use"]
    # the new contract: the method's options only; the data path and the cache switch as attributes
    recorded = {"aggregate": "mean", "seed": 0, "format": "raw"}
    assert [s[:4] for s in seen_new] == [("load", recorded, data, False), ("score", recorded, data, False)]
    assert a.provenance["options"] == recorded
    # the old contract: one dict, hidden keys included, the same object for load and score, as it always was
    (_, loaded), (_, scored) = seen_old
    assert loaded is scored and loaded == {**recorded, "cache": False, "_source": str(data)}
    assert b.options == {**recorded, "_source": str(data)}    # res.options (metrics) unchanged


def test_runner_resumes_a_new_contract_probe_and_matches_the_old_one(probes, data, tmp_path):
    new, old, seen_new, seen_old = probes
    m = tiny_model("gpt2")
    cell = {"name": "toy_new", "data": str(data), "aggregate": "mean"}
    direct = wb.run_probe("toy_new", m, data=data, n_boot=2000, aggregate="mean")
    calls = []

    def stopped(model, items, ctx):  # the probe's scorer, stopped (Ctrl-C) in its first call
        calls.append(len(items))
        raise KeyboardInterrupt

    wb.register_probe(dataclasses.replace(new, score=stopped), replace=True)
    store = tmp_path / "r.db"
    with pytest.raises(KeyboardInterrupt):
        wb.run({"gpt2": m}, [], store=store, probes=[cell], chunk_size=4, progress=False)
    assert calls == [10]  # a registered probe is scored as one chunk: it resumes as a whole cell
    wb.register_probe(new, replace=True)
    seen_new.clear()
    resumed = wb.run({"gpt2": m}, [], store=store, probes=[cell], chunk_size=4, progress=False)
    assert [s[0] for s in seen_new] == ["load", "score"]
    assert all(not (set(s[1]) & HIDDEN) for s in seen_new)       # hidden keys never reach the options
    assert wb.open_store(store).attempts().status.tolist() == ["interrupted", "finished"]
    res = resumed.cells[0]["result"]
    np.testing.assert_array_equal(res.items.lp_good, direct.items.lp_good)
    pd.testing.assert_frame_equal(res.summary(), direct.summary())
    assert res.provenance["options"] == direct.provenance["options"]

    seen_new.clear()  # a finished cell is rebuilt from the store without loading or scoring
    again = wb.run({"gpt2": m}, [], store=store, probes=[cell], chunk_size=4, progress=False)
    assert seen_new == [] and again.cells[0]["result"].items.equals(res.items)

    # the old-contract twin through the runner: the same rows, options and stored probe options
    old_res = wb.run({"gpt2": m}, [], store=tmp_path / "old.db", progress=False,
                     probes=[{**cell, "name": "toy_old"}]).cells[0]["result"]
    pd.testing.assert_frame_equal(old_res.items, res.items)
    assert old_res.options == res.options and old_res.provenance["options"] == res.provenance["options"]


def test_old_contract_spec_warns_once_at_first_use_when_not_registered(monkeypatch):
    """A built-in spec whose scorer is replaced by an old-style wrapper calling the built-in
    scorer with the old arguments (a pattern outside code uses) runs as before, with warnings."""
    from workbench.probes import templated
    m = tiny_model("gpt2")
    direct = wb.run_probe("occupations_pronouns", m, limit=12, n_boot=200, cache=False)
    spec, given = templated.SPECS["occupations_pronouns"], []

    def wrapper(model, items, options, skips):
        given.append(options)
        return spec.score(model, items, options, skips)

    monkeypatch.setitem(templated.SPECS, "occupations_pronouns", dataclasses.replace(spec, score=wrapper))
    with pytest.warns(DeprecationWarning) as caught:
        wrapped = wb.run_probe("occupations_pronouns", m, limit=12, n_boot=200, cache=False)
    _same_result(direct, wrapped)
    assert given[0]["cache"] is False and given[0]["_source"].endswith("occupations_pronouns.json")
    texts = [str(w.message) for w in caught]
    assert sum("follows the old probe contract" in t for t in texts) == 1
    assert any("calling a probe's score with the old arguments (model, items, options, skips)" in t for t in texts)


def test_built_in_scorer_called_directly_both_ways():
    from workbench.probes import templated
    from workbench.probes.api import prepare_probe
    m = tiny_model("gpt2")
    prep = prepare_probe("names_sentiment", m, limit=6, cache=False)
    ctx = prep.context(SkipLog())
    assert isinstance(ctx, ProbeContext) and not set(ctx.options) & HIDDEN and ctx.cache is False
    with pytest.raises(TypeError):
        ctx.options["aggregate"] = "mean"  # read-only: the options are what the provenance records
    new = templated.score(m, prep.items, ctx)
    with pytest.warns(DeprecationWarning, match=r"pass a workbench.probes.ProbeContext instead: score\(model, items, ctx\)"):
        old = templated.score(m, prep.items, prep.opts, SkipLog())
    pd.testing.assert_frame_equal(new, old)
    assert ctx.with_skips(SkipLog()).legacy_options() is prep.opts


def test_an_itemwise_registered_probe_resumes_item_by_item(data, tmp_path):
    """``itemwise=True`` in a spec (not a list of built-in names) lets the runner score a
    registered probe in chunks and resume an interrupted cell from the items it had stored."""
    def load(source, ctx):
        rows = [_item(i, p, g, b) for i, (p, g, b) in enumerate(_rows(source)) if p]
        return pd.DataFrame(rows), [source]

    calls = []

    def score(model, items, ctx):
        calls.append(len(items))
        if len(calls) == 2 and stop:
            raise KeyboardInterrupt  # Ctrl-C in the second chunk: the first one is stored
        return _scores(model, items, ctx.options["aggregate"], ctx.cache)

    spec = ProbeSpec(name="toy_itemwise", description="toy agreement, scored item by item", load=load, score=score,
                     metrics=_metrics, categories=("subject",), kinds=("causal",), defaults={"aggregate": "sum"},
                     itemwise=True)
    wb.register_probe(spec, replace=True)
    try:
        m, cell, store = tiny_model("gpt2"), {"name": "toy_itemwise", "data": str(data)}, tmp_path / "r.db"
        stop = False
        direct = wb.run_probe("toy_itemwise", m, data=data, n_boot=200)
        stop, calls[:] = True, []
        with pytest.raises(KeyboardInterrupt):
            wb.run({"gpt2": m}, [], store=store, probes=[cell], chunk_size=4, progress=False)
        assert calls == [4, 4]
        stop, calls[:] = False, []
        resumed = wb.run({"gpt2": m}, [], store=store, probes=[cell], chunk_size=4, progress=False)
        assert calls == [4, 2]            # only the 6 items the interrupted attempt had not stored
        res = resumed.cells[0]["result"]
        pd.testing.assert_frame_equal(res.items[direct.items.columns].reset_index(drop=True),
                                      direct.items.reset_index(drop=True), check_dtype=False)
    finally:
        unregister_probe("toy_itemwise")


def test_a_function_that_fits_neither_contract_is_refused_when_the_spec_is_made():
    with pytest.raises(InvalidInputError, match=r"its load takes neither load\(source, ctx\)"):
        ProbeSpec(name="bad", description="d", load=lambda source: None, score=lambda m, i, c: i, metrics=_metrics)
    with pytest.raises(InvalidInputError, match=r"its score takes neither"):
        ProbeSpec(name="bad", description="d", load=lambda s, c: None, score=lambda m: m, metrics=_metrics)


def test_a_dataframe_for_a_probe_that_reads_files_is_refused_at_the_door():
    """data= a DataFrame goes to the probes whose loader reads one (CrowS-Pairs, the image probe,
    registered probes); the file-reading ones refuse it clearly (it was a TypeError from Path)."""
    from workbench.probes.api import get_spec, probe_names
    m, frame = tiny_model("gpt2"), pd.DataFrame({"sentence": ["a b c"]})
    refused = [n for n in probe_names() if not get_spec(n).accepts_frame]
    assert {"bbq", "stereoset", "winobias", "winogender", "seat", "decisions"} <= set(refused)
    for name in refused:
        with pytest.raises(InvalidInputError, match="reads its data from files"):
            wb.run_probe(name, m, data=frame)
    assert get_spec("crows_pairs").accepts_frame
