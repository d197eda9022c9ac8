"""Where the workbench keeps its caches. ``WORKBENCH_CACHE`` overrides the default
(``~/.cache/workbench``); tests point it at a temporary folder when they need isolation."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")
    root.mkdir(parents=True, exist_ok=True)
    return root
