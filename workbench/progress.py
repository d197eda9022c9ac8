"""When to show progress bars: one rule for the whole package.

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
"""
from __future__ import annotations

import os

ENV = "WORKBENCH_PROGRESS"


def show_progress(progress, default: bool) -> bool:
    if progress is not None:
        return bool(progress)
    if os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    return bool(default)
