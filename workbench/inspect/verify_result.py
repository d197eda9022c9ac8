"""The fidelity report of ``wb.inspect.verify`` and ``verify_vision``
(:mod:`workbench.vision.capture`): one row per check and site. It sits below both, which build it
at their tops (``verify`` sends a vision-language model on to ``verify_vision``).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.provenance import model_name
from workbench.results import Result


@dataclass
class VerifyResult(Result):
    """``ok``: every check passed; ``report`` (== ``to_frame()``): one row per check and site."""

    ok: bool = False

    @property
    def report(self) -> pd.DataFrame:
        return self.frame

    def summary(self) -> pd.DataFrame:
        return self.frame.groupby("check", sort=False).agg(n=("ok", "size"), passed=("ok", "sum"),
                                                             max_abs_diff=("max_abs_diff", "max")).reset_index()

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        s = self.summary()
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.4 * len(s) + 1))
        ax.barh(s["check"], s["passed"] / s["n"], color=["tab:green" if p == n else "tab:red" for p, n in zip(s["passed"], s["n"])])
        ax.set(xlim=(0, 1), xlabel="fraction passed", title=f"fidelity of {model_name(self.provenance)}: "
                                                             f"{'OK' if self.ok else 'FAILED'}")
        return ax

    def __repr__(self):
        return f"VerifyResult(ok={self.ok}, {int(self.frame['ok'].sum())}/{len(self.frame)} checks passed)"


def check_row(check, site, layer, a, b, tol):
    """One row of a fidelity report: ``a`` and ``b`` bit-identical (``tol`` 0) or within ``tol``."""
    diff = float((a.float() - b.float()).abs().max()) if a.shape == b.shape else float("inf")
    ok = (a.shape == b.shape and torch.equal(a, b)) if tol == 0 else diff <= tol
    return dict(check=check, site=site, layer=layer, max_abs_diff=diff, tolerance=tol, ok=bool(ok))
