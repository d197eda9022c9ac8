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
