"""Progress of a headless audit on the terminal: which step, how far, how long.

:class:`ProgressExecutor` runs a notebook like nbconvert's ``ExecutePreprocessor`` and, as it
goes, prints one line per section (the notebook's markdown headings: "[3/9] Bias probes") and
echoes what the cells print to stdout, live (an audit prints one short line per unit of work:
"crows_pairs on smollm2-135m-instruct: 60 items, 14 s"). Progress bars are switched off in the
kernel (``WORKBENCH_PROGRESS=0``): they would freeze as text in the saved notebook.
"""
from __future__ import annotations

import sys
import time

from nbconvert.preprocessors import ExecutePreprocessor

from workbench.progress import ENV as PROGRESS_ENV  # one name for the switch


def _heading(cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    for line in cell.source.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return None


def sections(nb) -> dict[int, str]:
    """Index of the first code cell under each heading -> that heading."""
    out, current, pending = {}, None, False
    for i, cell in enumerate(nb.cells):
        title = _heading(cell)
        if title:
            current, pending = title, True
        elif cell.cell_type == "code" and pending:
            out[i], pending = current, False
    return out


class ProgressExecutor(ExecutePreprocessor):
    """``ExecutePreprocessor`` that reports each section and the cells' printed lines."""

    def __init__(self, stream=None, **kw):
        super().__init__(**kw)
        # the kernel's start-up notice about TCP transport on loopback is noise to an auditor;
        # its errors still show
        self.extra_arguments = [*self.extra_arguments, "--IPKernelApp.log_level=ERROR"]
        self._stream = stream or sys.stdout
        self._sections: dict[int, str] = {}
        self._start = time.perf_counter()

    def _say(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def preprocess(self, nb, resources=None, km=None):
        self._sections = sections(nb)
        self._start = time.perf_counter()
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if index in self._sections:
            k = list(self._sections).index(index) + 1
            self._say(f"[{k}/{len(self._sections)}] {self._sections[index]}  "
                      f"({time.perf_counter() - self._start:.0f} s)")
        return super().preprocess_cell(cell, resources, index)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        if msg.get("msg_type") == "stream" and content.get("name") == "stdout":
            for line in content.get("text", "").splitlines():
                if line.strip():
                    self._say(f"    {line}")
        return super().output(outs, msg, display_id, cell_index)


class Reporter:
    """The audit's lines on the terminal: one per finished section, and for every probe or task
    on every model, how far scoring is (items done, rate, time left), at most every ``every_s``
    seconds and once when it ends. Plain lines, never a bar, so a notebook that runs the audit
    keeps a readable log. ``enabled=False`` prints nothing.

    >>> import io
    >>> out = io.StringIO()
    >>> say = Reporter(stream=out, every_s=0)
    >>> tick = say.scoring("crows_pairs", "tiny")
    >>> tick(0, 4); tick(4, 4)
    >>> say.done("Scoring", "8 cells")
    >>> print(out.getvalue().splitlines()[-1].split(" (")[0])
    == Scoring: 8 cells
    """

    def __init__(self, stream=None, enabled: bool = True, every_s: float = 10.0):
        self._stream, self.enabled, self.every_s = stream, enabled, every_s
        self._start = time.perf_counter()

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=self._stream or sys.stdout, flush=True)

    def done(self, section: str, what: str = "", seconds: float | None = None) -> None:
        """One line for a finished section: ``== Section: what (12 s; 95 s in all)``."""
        total = time.perf_counter() - self._start
        took = f"{seconds:.0f} s; " if seconds is not None else ""
        self.say(f"== {section}{': ' + what if what else ''} ({took}{total:.0f} s in all)")

    def scoring(self, unit: str, model: str):
        """A ``progress(done, total)`` callback for one cell of the runner (see
        :func:`workbench.bench.cells.run_unit_cell`)."""
        state = {"t0": None, "first": 0, "last": 0.0}

        def tick(done: int, total: int) -> None:
            now = time.perf_counter()
            if state["t0"] is None:  # scoring starts: what the store already held is not timed
                state.update(t0=now, first=done, last=now)
                if done < total:
                    self.say(f"  {unit} | {model}: {done}/{total} items" + (" (resumed from the store)" if done else ""))
                return
            if done < total and now - state["last"] < self.every_s:
                return
            state["last"] = now
            scored, took = done - state["first"], now - state["t0"]
            rate = scored / took if took > 0 else float("nan")
            left = (total - done) / rate if rate and rate > 0 else float("nan")
            tail = f", about {_duration(left)} left" if done < total else f" in {_duration(took)}"
            self.say(f"  {unit} | {model}: {done}/{total} items, {rate:.1f} items/s{tail}")
        return tick


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "? s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
