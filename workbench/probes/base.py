"""What a probe is: a :class:`ProbeSpec` (the unit spec, :class:`workbench.units.UnitSpec`, under
the name its probes have always used), the context a run hands its loader and scorer
(:class:`ProbeContext`, i.e. :class:`workbench.units.UnitContext`), what it returns
(:class:`ProbeResult`, i.e. :class:`workbench.units.UnitResult`), and two helpers the probes'
loaders share.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.errors import DataError
from workbench.units.result import UnitResult, plot_summary
from workbench.units.spec import SkipLog, UnitContext, UnitSpec, hash_files, takes_context

ProbeSpec = UnitSpec
ProbeContext = UnitContext
ProbeResult = UnitResult

__all__ = ["ProbeContext", "ProbeResult", "ProbeSpec", "SkipLog", "find_file", "hash_files", "plot_summary",
           "require_text", "takes_context"]


def require_text(value) -> str | None:
    """The stripped string, or None when the field is missing/NaN/empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def find_file(source: Path, *names: str) -> Path:
    """``source`` itself if it is a file, else the first of ``names`` inside the folder."""
    if source.is_file():
        return source
    for n in names:
        if (source / n).is_file():
            return source / n
    raise DataError(f"none of {list(names)} found in {source}; pass the data file or its folder")


