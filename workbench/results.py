"""The one result shape used across the package: ``.to_frame()`` (tidy pandas), ``.summary()``
and ``.plot()``, plus the provenance that makes a number re-checkable."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Result:
    """Base class for results. Subclasses fill ``frame`` (one tidy row per observation) and
    override :meth:`summary` / :meth:`plot` where the default is not the right view.

    ``provenance`` holds model fingerprints, data/task hashes, scoring options, seeds and timings.
    """

    frame: pd.DataFrame
    provenance: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        return self.frame.describe(include="all")

    def plot(self, ax=None, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no default plot")

    def _repr_html_(self) -> str:  # JupyterLab shows the summary, not a dataclass dump
        from workbench.display import readable  # tokens shown as everywhere else (␣ for a space)
        return readable(self.summary())._repr_html_()
