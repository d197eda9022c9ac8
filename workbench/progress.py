"""When and how to show progress: one rule for the whole package.

A call's ``progress=True/False`` wins; ``progress=None`` (the default) shows a bar when the work
is long enough to want one, unless the environment variable ``WORKBENCH_PROGRESS`` is ``0``
(``false``, ``no``, ``off``): headless runs (``workbench audit``, CI) set it so that no bar is
frozen as text into a saved notebook.

>>> show_progress(True, default=False)
True
>>> import os; os.environ["WORKBENCH_PROGRESS"] = "0"
>>> show_progress(None, default=True)
False
>>> del os.environ["WORKBENCH_PROGRESS"]

Long work done once, on first use (de-quantising a GGUF model into the cache), reports through
:func:`task`: what it is doing (a named step, "2/4 de-quantising 272 tensors") and how far it is
(a count, and the seconds so far). Where that shows:

* in a notebook: a progress bar (tqdm's widget) labelled with the step;
* on a terminal: the same bar, on stderr;
* headless (``WORKBENCH_PROGRESS=0``): one plain line per step, and at every quarter of a step's
  count, on stdout, so a runner that echoes a kernel's printed lines (the audit's) shows them
  under its current section: ``smollm2-135m-instruct: first use, 2/4 de-quantising 272 tensors:
  136/272 (14 s)``;
* and always: to every listener added with :func:`add_listener` (a function of one event dict:
  ``title, step, index, n_steps, done, total, seconds, finished``), in the process doing the work.

>>> events = []
>>> remove = add_listener(events.append)
>>> with task("demo", n_steps=2, progress=False) as t:
...     t.step("counting", total=4)
...     t.advance(4)
...     t.step("writing")
>>> remove()
>>> [(e["index"], e["step"], e["done"], e["finished"]) for e in events]
[(1, 'counting', 0, False), (1, 'counting', 4, False), (2, 'writing', 0, False), (2, 'writing', 0, True)]
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable

ENV = "WORKBENCH_PROGRESS"
_LISTENERS: list[Callable[[dict], None]] = []


def show_progress(progress, default: bool) -> bool:
    if progress is not None:
        return bool(progress)
    if headless():
        return False
    return bool(default)


def headless() -> bool:
    """Whether ``WORKBENCH_PROGRESS`` switches bars off (a headless run)."""
    return os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off")


def add_listener(listener: Callable[[dict], None]) -> Callable[[], None]:
    """Send every :func:`task` event of this process to ``listener`` too; returns its remover."""
    _LISTENERS.append(listener)
    return lambda: _LISTENERS.remove(listener) if listener in _LISTENERS else None


class Task:
    """A long piece of work in named steps, each with an optional count (see the module doc)."""

    def __init__(self, title: str, n_steps: int, progress=None, unit: str = "it"):
        self.title, self.n_steps, self.unit = title, n_steps, unit
        self.index, self.step_name, self.done, self.total = 0, "", 0, None
        self.started = time.perf_counter()
        self.bars = show_progress(progress, default=True)
        self.lines = progress is not False and headless()   # headless: plain lines instead of bars
        self._bar = None
        self._quarter = 0

    def _event(self, finished: bool = False) -> dict:
        return {"title": self.title, "step": self.step_name, "index": self.index, "n_steps": self.n_steps,
                "done": self.done, "total": self.total, "seconds": time.perf_counter() - self.started,
                "finished": finished}

    def _emit(self, finished: bool = False, line: bool = True) -> None:
        event = self._event(finished)
        for listener in list(_LISTENERS):
            listener(event)
        if self.lines and line:
            print(describe(event), flush=True)

    def step(self, name: str, total: int | None = None) -> None:
        """Start the next step, ``name``, of ``total`` units (None: no count)."""
        self.index += 1
        self.step_name, self.done, self.total, self._quarter = name, 0, total, 0
        if self.bars:
            if self._bar is None:
                from tqdm.auto import tqdm
                self._bar = tqdm(total=total, unit=self.unit, leave=False)
            else:
                self._bar.reset(total=total)
            self._bar.set_description(f"{self.title}: {self.index}/{self.n_steps} {name}")
        self._emit()

    def count(self, total: int, name: str | None = None) -> None:
        """Give the current step its count (known only once the step has started), and a new name."""
        self.step_name, self.done, self.total, self._quarter = name or self.step_name, 0, total, 0
        if self._bar is not None:
            self._bar.reset(total=total)
            self._bar.set_description(f"{self.title}: {self.index}/{self.n_steps} {self.step_name}")
        self._emit()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        quarter = int(4 * self.done / self.total) if self.total else 0
        if quarter > self._quarter:   # lines and listeners hear of each quarter, not of every unit
            self._quarter = quarter
            self._emit()

    def close(self, failed: bool = False) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not failed:
            self._emit(finished=True, line=False)
            if self.bars or self.lines:
                print(f"{self.title}: done in {time.perf_counter() - self.started:.0f} s", flush=True)


def describe(event: dict) -> str:
    """One line for an event: ``title, 2/4 step: 136/272 (14 s)``."""
    count = f": {event['done']}/{event['total']}" if event["total"] else ""
    return (f"{event['title']}, {event['index']}/{event['n_steps']} {event['step']}{count} "
            f"({event['seconds']:.0f} s)")


@contextmanager
def task(title: str, n_steps: int, progress=None, unit: str = "it"):
    """Report a long piece of work (see the module doc); yields its :class:`Task`."""
    t = Task(title, n_steps, progress, unit)
    try:
        yield t
    except BaseException:
        t.close(failed=True)
        raise
    t.close()
