"""wb.run on tiny models: every stored score is the scoring engine's, metrics are recomputable
from the items, re-runs score nothing twice, and comparisons/plots/diffs work on the results."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

import workbench as wb
from workbench.errors import InvalidInputError

matplotlib.use("Agg")

PAIRS = [{"good": "The cat sat on the mat.", "bad": "The cat sat the on mat."},
         {"good": "The dog chased the ball.", "bad": "The dog chase the balls ball."},
         {"good": "She would arrive soon.", "bad": "She arrive would soon."}]
PAIRS_TASK = dict(name="pairs", kind="minimal_pairs", data=PAIRS, good="{good}", bad="{bad}")
TASKS = ["capitals", "prose", "arithmetic", PAIRS_TASK]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from workbench.testing import tiny_model
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_CACHE", str(cache))
    models = {"gpt2": tiny_model("gpt2"), "llama": tiny_model("llama")}
    res = wb.run(models, TASKS, store=tmp_path_factory.mktemp("s") / "r.db", limit=3, progress=False)
    yield res, models
    mp.undo()


def test_table_shape_and_intervals(grid):
    res, _ = grid
    t = res.table()
    assert list(t.columns) == ["model", "task", "metric", "value", "ci_low", "ci_high", "n"]
    assert set(t.model) == {"gpt2", "llama"} and set(t.task) == {"capitals", "prose", "arithmetic", "pairs"}
    assert set(t[t.task == "capitals"].metric) == {"acc", "acc_norm"}
    assert set(t[t.task == "prose"].metric) == {"word_perplexity", "byte_perplexity", "bits_per_byte",
                                                "token_perplexity"}
    # 3 items: exact intervals for proportions; none for the pooled perplexities (below MIN_N_BOOTSTRAP)
    given = t.ci_low.notna()
    assert given[t.task != "prose"].all() and not given[t.task == "prose"].any()
    assert (t.ci_low[given] <= t.value[given] + 1e-12).all() and (t.value[given] <= t.ci_high[given] + 1e-12).all()
    assert (t.n == 3).all()  # limit=3 items per task
    assert res.to_frame().equals(t)


def test_minimal_pairs_are_scored_by_the_engine(grid):
    res, models = grid
    items = res.items("gpt2", "pairs")
    ref = wb.perplexity(models["gpt2"], [p["good"] for p in PAIRS] + [p["bad"] for p in PAIRS])
    assert np.allclose(items.logprob_good, ref.logprob[:3]) and np.allclose(items.logprob_bad, ref.logprob[3:])
    assert items.correct.tolist() == (items.logprob_good > items.logprob_bad).astype(int).tolist()
    acc = res.table().query("model == 'gpt2' and task == 'pairs'").value.item()
    assert acc == pytest.approx(items.correct.mean())


def test_multiple_choice_acc_and_length_normalised_acc(grid):
    res, models = grid
    items = res.items("llama", "capitals")
    task = wb.load_task("capitals")
    for it, row in zip(task.select(3), items.itertuples()):
        ref = wb.loglikelihood(models["llama"], [(it["context"], " " + c) for c in it["choices"]]).logprob
        assert np.allclose(row.logprobs, ref)
        assert row.pred == int(np.argmax(ref)) and row.correct == int(row.pred == it["target"])
        assert row.pred_norm == int(np.argmax(np.asarray(ref) / [len(c) for c in it["choices"]]))
    t = res.table().query("model == 'llama' and task == 'capitals'").set_index("metric").value
    assert t["acc"] == pytest.approx(items.correct.mean()) and t["acc_norm"] == pytest.approx(items.correct_norm.mean())


def test_perplexity_metrics_pool_over_documents(grid):
    res, models = grid
    docs = [it["text"] for it in wb.load_task("prose").select(3)]
    ref = wb.perplexity(models["gpt2"], docs)
    t = res.table().query("model == 'gpt2' and task == 'prose'").set_index("metric").value
    assert t["bits_per_byte"] == pytest.approx(-ref.logprob.sum() / ref.n_bytes.sum() / math.log(2))
    assert t["word_perplexity"] == pytest.approx(math.exp(-ref.logprob.sum() / ref.n_words.sum()))
    assert t["token_perplexity"] == pytest.approx(math.exp(-ref.logprob.sum() / ref.n_tokens.sum()))


def test_generation_is_the_engines_greedy_completion(grid):
    res, models = grid
    items = res.items("gpt2", "arithmetic")
    task = wb.load_task("arithmetic")
    ref = wb.generate(models["gpt2"], [it["prompt"] for it in task.select(3)], max_new_tokens=task.max_new_tokens)
    assert items.completion.tolist() == ref.completion.tolist()
    assert items.answer.tolist() == [task.extract_answer(c) for c in ref.completion]
    assert items.correct.tolist() == [int(a == t) for a, t in zip(items.answer, items.target.astype(str))]


def test_rerun_scores_nothing_and_a_larger_limit_only_the_new_items(grid):
    res, models = grid
    before, n_items = res.store.attempts(), res.store.count_items()
    again = wb.run(models, ["capitals", PAIRS_TASK], store=res.store, limit=3, progress=False)
    log = res.store.attempts()
    # a complete cell is not started again: no new attempt, nothing scored, no new row
    assert len(log) == len(before) and log.n_scored.sum() == before.n_scored.sum()
    assert res.store.count_items() == n_items
    assert again.table().equals(res.table().query("task in ['capitals', 'pairs']").reset_index(drop=True))
    bigger = wb.run({"gpt2": models["gpt2"]}, ["capitals"], store=res.store, limit=5, progress=False)
    assert res.store.attempts().n_scored.iloc[-1] == 2  # items 4 and 5 only
    assert bigger.table().n.iloc[0] == 5
    assert again.items("gpt2", "capitals").id.tolist() == res.items("gpt2", "capitals").id.tolist()  # still 3


def test_paired_comparison_leaderboard_and_plots(grid):
    res, _ = grid
    cmp = res.compare("gpt2", "llama", "capitals")
    assert set(cmp.metric) == {"acc", "acc_norm"} and (cmp.test == "mcnemar_exact").all()
    a, b = res.items("gpt2", "capitals").correct, res.items("llama", "capitals").correct
    row = cmp.query("metric == 'acc' and category == 'all'").iloc[0]
    assert row["diff"] == pytest.approx(a.mean() - b.mean()) and row.n == 3
    assert res.compare("gpt2", "llama", "prose").test.eq("paired_permutation").all()  # derived: exact permutation
    wide = res.side_by_side()
    assert list(wide.columns) == ["gpt2", "llama"] and ("capitals", "acc") in wide.index
    row = res.table().query("model == 'gpt2' and task == 'capitals' and metric == 'acc'").iloc[0]
    assert wide.loc[("capitals", "acc"), "gpt2"] == f"{row.value:.4g} [{row.ci_low:.4g}, {row.ci_high:.4g}]"
    board = res.leaderboard()
    assert list(board.model) and {"capitals:acc", "prose:bits_per_byte", "mean_rank"} <= set(board.columns)
    assert board.mean_rank.is_monotonic_increasing
    for kind in ("bars", "forest"):
        fig = res.plot(kind=kind)
        assert len(fig.axes) == 3  # acc, bits_per_byte, exact_match
    with pytest.raises(InvalidInputError, match="no results for model"):
        res.items("gpt3", "capitals")


def test_diff_of_two_runs_item_by_item(tmp_path, isolated_cache):
    from workbench.testing import tiny_model
    store = tmp_path / "d.db"
    before = wb.run({"m": tiny_model("gpt2", seed=0)}, [PAIRS_TASK], store=store, progress=False)
    after = wb.run({"m": tiny_model("gpt2", seed=1)}, [PAIRS_TASK], store=store, progress=False)
    same = wb.run({"m": tiny_model("gpt2", seed=0)}, [PAIRS_TASK], store=store, tag="again", progress=False)
    ka, kb, kc = (r.cells[0]["run_key"] for r in (before, after, same))
    d = after.diff(ka, kb)
    assert len(d) == 3 and d.changed.all() and d.attrs["n_changed"] == 3
    assert np.allclose(d.logprob_good_delta, d.logprob_good_b - d.logprob_good_a)
    assert not same.diff(ka, kc).changed.any()  # a re-run with the same weights is identical
    other = wb.run({"x": tiny_model("gpt2")}, ["capitals"], store=store, limit=1, progress=False)
    with pytest.raises(InvalidInputError, match="same model and task"):
        after.diff(ka, other.cells[0]["run_key"])


def test_bad_arguments_fail_before_any_work(tiny, tmp_path):
    m = tiny("gpt2")
    store = tmp_path / "v.db"
    with pytest.raises(InvalidInputError, match="backend"):
        wb.run([m], ["capitals"], store=store, backend="spark")
    with pytest.raises(InvalidInputError, match="models is empty"):
        wb.run([], ["capitals"], store=store)
    with pytest.raises(InvalidInputError, match="share the name"):
        wb.run([m, m], ["capitals"], store=store)
    with pytest.raises(InvalidInputError, match="limit"):
        wb.run([m], ["capitals"], store=store, limit=0)
    with pytest.raises(InvalidInputError, match="unique"):
        wb.run([m], ["capitals", "capitals"], store=store)
    with pytest.raises(wb.errors.WrongModelKindError, match="causal"):
        wb.run([tiny("bert")], ["capitals"], store=store, progress=False)
    assert wb.open_store(store).attempts().status.tolist() == ["failed"]  # the failure is logged


@pytest.mark.parametrize("option, value, message", [
    ("limit", True, "limit must be an int, got the bool True"),   # ran one item: True is 1 to Python
    ("limit", 2.0, "limit must be an int"), ("chunk_size", True, "chunk_size must be an int"),
    ("seed", True, "seed must be an int"), ("seed", "3", "seed must be an int.*without quotes"),
    ("seed", -1, "seed must be at least 0"), ("progress", "no", "progress must be True or False"),
    ("tag", 5, "tag must be a string"), ("score_kwargs", "fast", "score_kwargs must be a dict")])
def test_the_runners_door_refuses_what_is_not_its_type(option, value, message, tiny, tmp_path):
    """Nothing is scored and no store is written: the whole door is checked before any work."""
    store = tmp_path / "door.db"
    with pytest.raises(wb.errors.InvalidInputError, match=message):
        wb.run([tiny("gpt2")], ["capitals"], store=store, **{option: value})
    assert not store.exists()


def test_a_task_or_probe_limit_is_not_a_bool(tiny):
    with pytest.raises(InvalidInputError, match="limit must be a positive integer"):
        wb.load_task("capitals").select(True)
    with pytest.raises(InvalidInputError, match="limit must be a positive integer"):
        wb.run_probe("occupations_pronouns", tiny("gpt2"), limit=True, n_boot=20)


def test_bias_probes_run_in_the_same_grid_and_store(tmp_path, isolated_cache):
    from workbench.testing import tiny_model
    models = {"a": tiny_model("gpt2"), "b": tiny_model("llama")}
    store = tmp_path / "p.db"
    res = wb.run(models, ["capitals"], store=store, limit=6, probes=["occupations_pronouns"], progress=False)
    t = res.table()
    probe_rows = t[t.task == "probe:occupations_pronouns"]
    assert set(probe_rows.model) == {"a", "b"} and "n_skipped" in set(probe_rows.metric)
    direct = wb.run_probe("occupations_pronouns", models["a"], limit=6, seed=0)
    items = res.items("a", "probe:occupations_pronouns")
    assert np.allclose(items["diff"], direct.items["diff"])  # the probe's own per-item scores
    assert len(wb.open_store(store).items(res.cells[1]["run_key"])) == 6  # ... kept in the store
    cmp = res.compare("a", "b", "probe:occupations_pronouns")
    assert {"pct_a_preferred", "mean_diff"} <= set(cmp.metric)
    n_attempts = len(res.store.attempts())
    again = wb.run(models, ["capitals"], store=store, limit=6, probes=["occupations_pronouns"], progress=False)
    assert len(again.store.attempts()) == n_attempts  # complete cells (tasks and probes) are reloaded, not restarted
    assert again.table().equals(t)
    assert wb.bench.BenchResults.from_store(wb.open_store(store)).table().equals(t)  # what `workbench results` prints
    assert list(res.leaderboard().columns) == ["model", "capitals:acc", "mean_rank"]


def test_one_model_in_memory_at_a_time(tmp_path, isolated_cache, monkeypatch):
    import gc
    import weakref

    from workbench.bench import runner
    from workbench.testing import tiny_model
    folders = []
    for arch in ("gpt2", "llama", "qwen2"):  # saved folders: the runner loads each by path
        m, folder = tiny_model(arch), tmp_path / arch
        m.hf.save_pretrained(folder)
        m.tokenizer.save_pretrained(folder)
        folders.append(str(folder))
    del m
    gc.collect()
    loaded, alive_at_load = [], []
    real_load = runner.load_model_spec

    def recording_load(spec):  # the real loader; we only watch what is still alive
        gc.collect()
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        model = real_load(spec)
        loaded.append(weakref.ref(model.hf))
        return model
    monkeypatch.setattr(runner, "load_model_spec", recording_load)
    res = wb.run(folders, [PAIRS_TASK], store=tmp_path / "m.db", progress=False)
    assert alive_at_load == [0, 0, 0]  # each model was released before the next was loaded
    assert res.models == folders


def test_bad_probes_fail_before_any_model_is_loaded(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown probe"):
        wb.run(["never-loaded"], ["capitals"], store=tmp_path / "r.db", probes=["nonesuch"])
    with pytest.raises(InvalidInputError, match="needs its data set"):
        wb.run(["never-loaded"], ["capitals"], store=tmp_path / "r.db", probes=["crows_pairs"])


def test_task_hash_and_fingerprints_travel_with_results(grid):
    res, models = grid
    t = res.table()
    assert t.attrs["task_hashes"]["capitals"] == wb.load_task("capitals").hash
    assert t.attrs["fingerprints"]["gpt2"] == models["gpt2"].state_id
    items = res.items("gpt2", "capitals")
    assert items.attrs["task_hash"] == wb.load_task("capitals").hash and items.attrs["run_key"]
    assert {r["task_hash"] for r in res.provenance["runs"]} == set(t.attrs["task_hashes"].values())
    runs = res.runs()
    assert set(runs.task_hash) == set(t.attrs["task_hashes"].values())
    assert {"workbench", "torch", "transformers"} <= set(__import__("json").loads(runs.versions_json[0]))
