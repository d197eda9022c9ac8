"""No bad input makes the ``workbench`` command print a Python traceback: exit code 2 and a
message that says what was wrong. A table of bad inputs runs in-process through ``main``
(argparse's own errors end in ``SystemExit(2)``); a few run as ``python -m workbench`` too."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny saved model, a good store, and bad files of every kind."""
    from workbench.testing import tiny_model
    d = tmp_path_factory.mktemp("cli-bad")
    m = tiny_model("gpt2")
    m.hf.save_pretrained(d / "tiny")
    m.tokenizer.save_pretrained(d / "tiny")
    (d / "notdb.db").write_text("hello, I am not a database\n" * 50)
    (d / "afile").write_text("x")
    (d / "blimp.jsonl").write_text("\n".join(json.dumps({"sentence_good": f"A cat sat {i}.",
                                                         "sentence_bad": f"A cat sit {i}.", "UID": "x"})
                                             for i in range(5)) + "\n")
    (d / "latin1.csv").write_bytes("text\nCafé au lait is good.\n".encode("latin-1"))
    (d / "bad.yaml").write_text("name: [unclosed\n")
    (d / "attr.yaml").write_text("name: attr\nkind: perplexity\ntext: '{text.__class__.__mro__}'\ndata: latin1.csv\n")
    (d / "schema.yaml").write_text(f"name: sch\nkind: perplexity\ntext: '{{body}}'\ndata: {d / 'blimp.jsonl'}\n")
    (d / "nulls.jsonl").write_text('{"good": null, "bad": "x y"}\n{"good": "a b", "bad": "a b"}\n')
    (d / "empty.jsonl").write_text("")
    good = d / "good.db"
    assert main(["run", "--models", str(d / "tiny"), "--tasks", "capitals", "--limit", "2", "--store", str(good),
                 "--no-progress"]) == 0
    return d


RUN = ["run", "--models", "{M}", "--tasks", "capitals", "--no-progress"]
CASES = [
    # (case, argv with {M} = tiny model folder and {d} = the files folder, fragment of the message)
    ("--limit 0", RUN + ["--limit", "0"], "must be 1 or more"),
    ("--limit -3", RUN + ["--limit", "-3"], "must be 1 or more"),
    ("--limit abc", RUN + ["--limit", "abc"], "is not a whole number"),
    ("--chunk-size 0", RUN + ["--chunk-size", "0"], "must be 1 or more"),
    ("--seed -1", RUN + ["--seed", "-1"], "must be 0 or more"),
    ("--format xml", RUN + ["--format", "xml"], "invalid choice"),
    ("no command", [], "required"),
    ("unknown task", ["run", "--models", "{M}", "--tasks", "nosuchtask", "--store", "{d}/x.db"], "unknown task"),
    ("unknown model", ["run", "--models", "nosuchmodel", "--tasks", "capitals", "--store", "{d}/x.db", "--no-progress"],
     "unknown model alias"),
    ("missing model folder", ["run", "--models", "{d}/nope", "--tasks", "capitals", "--store", "{d}/x.db",
                              "--no-progress"], "no such file or folder"),
    ("store is a folder", RUN + ["--store", "{d}"], "is a folder"),
    ("store is not SQLite", RUN + ["--store", "{d}/notdb.db"], "not a SQLite file"),
    ("store under a file", RUN + ["--store", "{d}/afile/r.db"], "not a folder"),
    ("results: no store", ["results", "--store", "{d}/none.db"], "no results store"),
    ("results: not SQLite", ["results", "--store", "{d}/notdb.db"], "not a SQLite file"),
    ("results: a folder", ["results", "--store", "{d}"], "is a folder"),
    ("diff: unknown run", ["diff", "--store", "{d}/good.db", "nokey", "nokey2"], "no run matches"),
    ("compare: unknown models", ["compare", "--store", "{d}/good.db", "--task", "capitals", "a", "b"], "no results"),
    ("latin-1 task file", ["run", "--models", "{M}", "--tasks", "{d}/latin1.csv", "--store", "{d}/x.db"], "encoding="),
    ("invalid YAML spec", ["run", "--models", "{M}", "--tasks", "{d}/bad.yaml", "--store", "{d}/x.db"],
     "not valid YAML"),
    ("template with an attribute", ["run", "--models", "{M}", "--tasks", "{d}/attr.yaml", "--store", "{d}/x.db"],
     "not allowed"),
    ("task data of another schema", ["run", "--models", "{M}", "--tasks", "{d}/schema.yaml", "--store", "{d}/x.db"],
     "needs field(s) ['body']"),
    ("every row null or equal", ["run", "--models", "{M}", "--tasks", "{d}/nulls.jsonl", "--store", "{d}/x.db"],
     "all 2 rows were skipped"),
    ("empty task file", ["run", "--models", "{M}", "--tasks", "{d}/empty.jsonl", "--store", "{d}/x.db"], "no rows"),
    ("unknown BLiMP paradigm", ["run", "--models", "{M}", "--tasks", "blimp:nope", "--store", "{d}/x.db"],
     "no group(s) ['nope']"),
    ("unknown probe", RUN + ["--probes", "nosuch", "--store", "{d}/x.db"], "unknown probe"),
    ("probe data of another schema", RUN + ["--limit", "2", "--probes", "crows_pairs={d}/blimp.jsonl",
                                            "--store", "{d}/p.db"], "missing column(s)"),
    ("audit: missing notebook", ["audit", "{d}/none.ipynb", "--out", "{d}/out"], "notebook not found"),
    ("audit: --timeout 0", ["audit", "--timeout", "0"], "must be 1 or more"),
]


def _argv(argv, d: Path):
    return [a.replace("{M}", str(d / "tiny")).replace("{d}", str(d)) for a in argv]


@pytest.mark.parametrize("case, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_without_a_traceback(case, argv, fragment, files, capsys, isolated_cache):
    try:
        code = main(_argv(argv, files))
    except SystemExit as e:  # argparse: usage and one error line
        code = e.code
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2, text
    assert "Traceback" not in text
    errors = [line for line in out.err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], out.err  # one line that says what was wrong


@pytest.mark.parametrize("case", ["store is not SQLite", "--limit 0", "template with an attribute"])
def test_bad_input_through_python_m_workbench(case, files, tmp_path):
    argv = _argv(dict((c[0], c[1]) for c in CASES)[case], files)
    proc = subprocess.run([sys.executable, "-m", "workbench", *argv], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**__import__("os").environ, "WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
