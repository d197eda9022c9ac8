"""The ``workbench`` command line: run, results, compare, tasks (in-process and as a program)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def save_tiny(arch: str, folder: Path, seed: int = 0) -> str:
    """A tiny model saved as a normal transformers folder (what ``load_model(path)`` reads)."""
    from workbench.testing import tiny_model
    m = tiny_model(arch, seed=seed)
    m.hf.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return save_tiny("gpt2", root / "tiny-gpt2"), save_tiny("llama", root / "tiny-llama")


def test_subcommands_are_registered():
    assert {"run", "results", "compare", "tasks"} <= set(COMMANDS)


def test_tasks_lists_the_builtins(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("blimp", "capitals", "arithmetic", "prose", "minimal_pairs", "perplexity"):
        assert name in out


def test_run_then_results_and_compare(saved, tmp_path, isolated_cache, capsys):
    a, b = saved
    db = str(tmp_path / "results.db")
    assert main(["run", "--models", a, b, "--tasks", "capitals", "prose", "--limit", "2", "--store", db,
                 "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "task", "metric", "value", "ci_low", "ci_high", "n"]
    assert len(out) == 1 + 2 * (2 + 4)  # 2 models x (acc, acc_norm + 4 perplexity metrics)

    assert main(["results", "--store", db, "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0] == "model,task,metric,value,ci_low,ci_high,n" and len(csv) == 13

    assert main(["results", "--store", db, "--runs"]) == 0
    runs = capsys.readouterr().out
    assert runs.count("partial") == 4  # limit 2 of each task, 4 cells

    assert main(["results", "--store", db, "--leaderboard"]) == 0
    assert "mean_rank" in capsys.readouterr().out

    assert main(["compare", "--store", db, "--task", "capitals", a, b]) == 0
    assert "mcnemar_exact" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    assert main(["results", "--store", str(tmp_path / "missing.db")]) == 2
    assert "run `workbench run" in capsys.readouterr().err
    assert main(["run", "--models", str(tmp_path / "no-model"), "--tasks", "nonesuch", "--store",
                 str(tmp_path / "r.db")]) == 2
    assert "unknown task 'nonesuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--tasks", "blimp"])  # --models is required (argparse exits)


def test_python_dash_m_workbench():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "run" in out.stdout and "results" in out.stdout


def test_diff_of_two_runs(saved, tmp_path, isolated_cache, capsys):
    import workbench as wb
    a, _ = saved
    db = str(tmp_path / "d.db")
    for tag in ("before", "after"):
        assert main(["run", "--models", a, "--tasks", "capitals", "--limit", "2", "--store", db, "--tag", tag,
                     "--no-progress"]) == 0
    keys = wb.open_store(db).runs().run_key.tolist()
    capsys.readouterr()
    assert main(["diff", "--store", db, keys[0][:8], keys[1][:8], "--all", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "0 of 2 common items changed" in captured.err  # same model, same task: identical scores
    assert captured.out.splitlines()[0].startswith("id,") and len(captured.out.splitlines()) == 3


def test_backend_is_the_former_name_of_executor_and_says_so(capsys):
    from workbench.cli import build_parser
    args = build_parser().parse_args(["run", "--models", "m", "--backend", "ray"])
    assert args.executor == "ray"
    err = capsys.readouterr().err
    assert "--backend is deprecated" in err and "--executor" in err
    args = build_parser().parse_args(["run", "--models", "m", "--executor", "ray"])
    assert args.executor == "ray" and capsys.readouterr().err == ""
    assert build_parser().parse_args(["run", "--models", "m"]).executor == "local"
