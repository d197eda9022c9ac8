"""Task specs: built-in tasks, user tasks from files / datasets, the task hash, bad input."""
from __future__ import annotations

import json

import pytest

import workbench as wb
from workbench.tasks.spec import KINDS, Task, list_tasks
from workbench.errors import DataError, InvalidInputError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_builtin_tasks_cover_every_kind():
    table = list_tasks()
    assert set(table.kind) == set(KINDS)
    for name in table.name:
        if name == "blimp":
            continue  # needs the shared data folder; tested below
        task = wb.load_task(name)
        assert task.all_items and len({it["id"] for it in task.all_items}) == len(task.all_items)


def test_multiple_choice_items_and_text_target():
    task = wb.load_task("capitals")
    item = task.all_items[0]
    assert item["context"] == "Question: What is the capital of France?\nAnswer:"
    assert item["choices"][item["target"]] == "Paris"


def test_blimp_all_paradigms_and_limit_per_paradigm(shared_data):
    task = wb.load_task("blimp")
    assert task.kind == "minimal_pairs" and len(task.group_names) == 67
    items = task.select(3)
    assert len(items) == 67 * 3
    assert all(sum(it["group"] == g for it in items) == 3 for g in task.group_names)
    assert {"UID", "good", "bad"} <= set(items[0])
    sub = wb.load_task("blimp:adjunct_island,wh_island")
    assert [it["group"] for it in sub.select(2)] == ["adjunct_island"] * 2 + ["wh_island"] * 2
    assert sub.hash == task.hash  # a selection, like limit, is not part of the task's identity
    with pytest.raises(InvalidInputError, match="no group"):
        wb.load_task("blimp:not_a_paradigm").select()


def test_hash_covers_data_template_and_scoring_options(tmp_path):
    rows = [{"prompt": f"{i} + 1 =", "answer": str(i + 1)} for i in range(5)]
    base = dict(name="add", kind="generation", data=rows, prompt="{prompt}", target="{answer}")
    h = wb.load_task(base).hash
    assert wb.load_task(base).hash == h  # stable
    assert wb.load_task({**base, "name": "renamed"}).hash == h
    assert wb.load_task({**base, "prompt": "Q: {prompt}"}).hash != h  # template
    assert wb.load_task({**base, "data": rows[:4] + [{"prompt": "4 + 1 =", "answer": "6"}]}).hash != h  # data
    assert wb.load_task({**base, "max_new_tokens": 5}).hash != h  # scoring option
    assert wb.load_task({**base, "scoring": "regex", "regex": r"\d+"}).hash != h


def test_user_tasks_from_jsonl_csv_and_datasets(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"sentence_good": "A cat sits.", "sentence_bad": "A cat sit."},
                                                   {"sentence_good": "Dogs run.", "sentence_bad": "Dogs runs."}])
    t = wb.load_task(str(pairs))
    assert (t.name, t.kind, t.all_items[1]["bad"]) == ("pairs", "minimal_pairs", "Dogs runs.")

    corpus = tmp_path / "corpus.csv"
    corpus.write_text('title,text\na,"One short text."\nb,"Another, longer text here."\n')
    t = wb.load_task(str(corpus), id="{title}")
    assert t.kind == "perplexity" and [it["id"] for it in t.all_items] == ["a", "b"]

    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"q": "Is ice cold?", "opts": ["yes", "no"], "y": 0}])
    t = wb.load_task(dict(name="ice", kind="multiple_choice", data=ds, context="{q}", choices="{opts}", target="{y}"))
    assert t.all_items[0]["choices"] == ["yes", "no"]
    saved = tmp_path / "saved"
    ds.save_to_disk(str(saved))
    spec = tmp_path / "ice.yaml"
    spec.write_text("kind: multiple_choice\ndata: {dataset: saved}\ncontext: '{q}'\nchoices: '{opts}'\ntarget: '{y}'\n")
    t2 = wb.load_task(str(spec))
    assert t2.name == "ice" and t2.hash == t.hash  # same content, different source => same hash


def test_generation_answer_extraction():
    task = wb.load_task("arithmetic")
    assert task.extract_answer(" 16 apples\nQuestion: ...") == "16"
    assert task.extract_answer(" minus 3") == "3" and task.extract_answer(" -3") == "-3"
    assert task.extract_answer(" no number") == ""
    exact = Task(name="e", kind="generation", data=[{"p": "x", "a": "Paris"}], prompt="{p}", target="{a}",
                 ignore_case=True)
    assert exact.extract_answer(" PARIS\nmore") == "paris"


def test_bad_specs_say_what_to_do(tmp_path):
    rows = [{"text": "hello there"}]
    with pytest.raises(DataError, match=r"needs field\(s\) \['body'\]"):
        wb.load_task(dict(name="t", kind="perplexity", data=rows, text="{body}")).all_items
    with pytest.raises(DataError, match="not unique"):
        wb.load_task(dict(name="t", kind="perplexity", data=rows * 2, text="{text}", id="{text}")).all_items
    with pytest.raises(DataError, match="not one of the choices"):
        wb.load_task(dict(name="t", kind="multiple_choice", data=[{"c": ["a", "b"], "y": "z"}], choices="{c}",
                          target="{y}", target_type="text")).all_items
    with pytest.raises(DataError, match="outside"):
        wb.load_task(dict(name="t", kind="multiple_choice", data=[{"c": ["a", "b"], "y": 2}], choices="{c}",
                          target="{y}")).all_items
    with pytest.raises(InvalidInputError, match="unknown task spec key"):
        wb.load_task(dict(name="t", kind="perplexity", data=rows, text="{text}", txet="{text}"))
    with pytest.raises(InvalidInputError, match="needs \\['good', 'bad'\\]"):
        wb.load_task(dict(name="t", kind="minimal_pairs", data=rows))
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        wb.load_task(dict(name="t", kind="cloze", data=rows))
    with pytest.raises(KeyError, match="unknown task 'nonesuch'"):
        wb.load_task("nonesuch")
    # a data file that is not there is a missing file, not an unknown task name
    for missing in [tmp_path / "missing.jsonl", "data/items.csv.gz", "sub/folder/task"]:
        with pytest.raises(DataError, match=f"task data file '{missing}' does not exist"):
            wb.load_task(str(missing))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        wb.load_task(str(bad)).all_items
    with pytest.raises(InvalidInputError, match="limit must be a positive integer"):
        wb.load_task("prose").select(0)
