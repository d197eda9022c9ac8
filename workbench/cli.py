"""The ``workbench`` command line (also ``python -m workbench``).

    workbench run --models smollm2-135m-instruct gemma-3-270m --units blimp crows_pairs=DATA --store results.db
    workbench run --models smollm2-135m-instruct gemma-3-270m --tasks blimp --store results.db --limit 20
    workbench results --store results.db [--groups] [--runs] [--format csv]
    workbench compare --store results.db --task blimp smollm2-135m-instruct gemma-3-270m
    workbench diff --store results.db RUN_KEY_A RUN_KEY_B
    workbench tasks
    workbench grade submitted/ --out grades.csv

Subcommands are registered with :func:`command`; adding one (e.g. ``audit``) is a function that
adds its arguments and a function that runs it, in any module imported by :func:`build_parser`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from workbench import __version__
from workbench.argtypes import non_negative_int, positive_int
from workbench.errors import DataError, WorkbenchError

# The command handlers import what they run when they run (for a fast `workbench --help`); the
# parser and the error handling need only the light modules above.

# name -> (help, add_arguments(parser), handler(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}


def command(name: str, help: str, add_arguments: Callable):
    """Register a subcommand: ``@command("audit", "...", add_args)`` on its handler."""
    def wrap(handler):
        COMMANDS[name] = (help, add_arguments, handler)
        return handler
    return wrap


def _print_frame(df, fmt: str = "table") -> None:
    if fmt == "csv":
        df.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(df.to_json(orient="records", indent=1))
    else:
        print(df.to_string(index=False) if len(df) else "(no rows)")


class _FormerName(argparse.Action):
    """An option's former name: it still works, and says on stderr what it is called now."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"workbench: {option_string} is deprecated and will be removed: it is now --executor "
              "(where cells run); 'backend' names a model's engine", file=sys.stderr)
        setattr(namespace, self.dest, values)


# ---- run -------------------------------------------------------------------------------------
def _run_args(p):
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                   help="model aliases, local folders or hub ids (loaded one at a time)")
    p.add_argument("--units", nargs="+", default=None, metavar="UNIT",
                   help="units of work, any mix: task names (see `workbench tasks`), YAML specs or data files, "
                        "and bias probes as NAME=DATA_PATH or probe:NAME")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="built-in task names (see `workbench tasks`), YAML specs or data files")
    p.add_argument("--store", default="results.db", help="SQLite results file (default: results.db)")
    p.add_argument("--limit", type=positive_int, default=None, help="items per task (per BLiMP paradigm)")
    p.add_argument("--probes", nargs="*", default=None, metavar="PROBE", help="bias probes to run in the grid: NAME or NAME=DATA_PATH (see wb.list_probes())")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--tag", default="", help="part of the run identity: a new tag re-runs everything")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where cells run")
    p.add_argument("--backend", dest="executor", choices=["local", "ray"], default=argparse.SUPPRESS,
                   action=_FormerName, help="former name of --executor (deprecated)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--chunk-size", type=positive_int, default=64, help="items committed per transaction")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-score-cache", action="store_true",
                   help="do not reuse the scoring engine's cached scores (e.g. to time a grid)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


@command("run", "run models x tasks; results land in the store (resumable)", _run_args)
def _run(args) -> int:
    import workbench as wb
    res = wb.run(models=args.models, units=args.units, tasks=args.tasks, store=args.store, limit=args.limit,
                 probes=args.probes, seed=args.seed, tag=args.tag, executor=args.executor, ray_address=args.ray_address,
                 chunk_size=args.chunk_size, progress=not args.no_progress,
                 score_kwargs={"cache": False} if args.no_score_cache else None)
    _print_frame(res.table(), args.format)
    print(f"# {len(res.cells)} cells in {res.provenance['wall_s']:.1f} s; store: {res.store.path}", file=sys.stderr)
    return 0


# ---- results ---------------------------------------------------------------------------------
def _store_arg(p):
    p.add_argument("--store", default="results.db", help="SQLite results file (default: results.db)")


def _results_args(p):
    _store_arg(p)
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--groups", action="store_true", help="also one row per group (BLiMP paradigm)")
    p.add_argument("--runs", action="store_true", help="list the stored runs (status, items, attempts)")
    p.add_argument("--leaderboard", action="store_true", help="one row per model, ranked")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


def _open_existing(path: str):
    from workbench.bench.store import open_store
    if not Path(path).exists():
        raise DataError(f"no results store at {path!r}: run `workbench run ... --store {path}` first")
    return open_store(path)


@command("results", "print the results table of a store", _results_args)
def _results(args) -> int:
    from workbench.bench.results import BenchResults
    store = _open_existing(args.store)
    if args.runs:
        cols = ["run_key", "model_name", "task_name", "task_hash", "status", "n_items", "n_attempts", "wall_s"]
        _print_frame(store.runs()[cols], args.format)
        return 0
    res = BenchResults.from_store(store, models=args.models, tasks=args.tasks)
    if args.leaderboard:
        _print_frame(res.leaderboard(), args.format)
    else:
        _print_frame(res.table(groups=args.groups), args.format)
    return 0


# ---- compare ---------------------------------------------------------------------------------
def _compare_args(p):
    _store_arg(p)
    p.add_argument("--task", required=True)
    p.add_argument("model_a")
    p.add_argument("model_b")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


@command("compare", "paired test of two models on the same items of a task", _compare_args)
def _compare(args) -> int:
    from workbench.bench.results import BenchResults
    res = BenchResults.from_store(_open_existing(args.store), models=[args.model_a, args.model_b], tasks=[args.task])
    _print_frame(res.compare(args.model_a, args.model_b, args.task), args.format)
    return 0


# ---- diff ------------------------------------------------------------------------------------
def _diff_args(p):
    _store_arg(p)
    p.add_argument("run_a", help="run key (or unique prefix) from `workbench results --runs`")
    p.add_argument("run_b")
    p.add_argument("--all", action="store_true", help="every common item, not only the changed ones")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


@command("diff", "item-by-item difference of two runs of the same model and task", _diff_args)
def _diff(args) -> int:
    from workbench.bench.results import BenchResults
    d = BenchResults(_open_existing(args.store), []).diff(args.run_a, args.run_b)
    print(f"# {d.attrs['n_changed']} of {d.attrs['n_common']} common items changed; only in a: "
          f"{d.attrs['n_only_a']}, only in b: {d.attrs['n_only_b']}", file=sys.stderr)
    _print_frame(d if args.all else d[d.changed], args.format)
    return 0


# ---- tasks -----------------------------------------------------------------------------------
@command("tasks", "list the built-in benchmark tasks", lambda p: None)
def _tasks(args) -> int:
    from workbench.tasks.spec import list_tasks
    _print_frame(list_tasks())
    return 0


# ---- audit -----------------------------------------------------------------------------------
def _audit_args(p):
    from workbench.audit.command import add_audit_arguments
    add_audit_arguments(p)


@command("audit", "run an audit notebook headless (default: the flagship audit) and write its "
                  "HTML report and audit card", _audit_args)
def _audit(args) -> int:
    from workbench.audit.command import run_audit
    return run_audit(args)


# ---- grade -----------------------------------------------------------------------------------
def _grade_args(p):
    from workbench.course.grade import add_grade_arguments
    add_grade_arguments(p)


@command("grade", "run a folder of submitted course notebooks and write one table (student, exercise, "
                  "status)", _grade_args)
def _grade(args) -> int:
    from workbench.course.grade import run_grade
    return run_grade(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Open Model Workbench: audit open language models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``workbench`` command; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except WorkbenchError as e:  # bad input: the message says what to do; no traceback
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # one line
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
