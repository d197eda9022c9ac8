"""The attribution result: a pandas DataFrame (one row per prompt token) that also renders itself
as highlighted text and carries its sanity checks.

It *is* a ``DataFrame`` (columns ``position, token, token_id, attribution`` and, when the
randomised-model check ran, ``attribution_random``), so ``df["attribution"]``, sorting and
plotting with pandas work as usual; any derived frame (a slice, ``sort_values``) is plain data,
no longer the attribution (a :class:`~workbench.display.TokenFrame`: its tokens show as text). What it adds, following the package's result shape:

* ``_repr_html_`` / :meth:`html`: the prompt with each token highlighted, and the sanity checks;
* :meth:`summary`: the sanity checks as a frame (check, value, reference, ok, note);
* :meth:`plot`: a bar chart per token (matplotlib; pandas' plot accessor stays reachable through
  ``.to_frame().plot``);
* ``.attrs``: method, model, fingerprint, target, log-probabilities, timings, options, and
  ``.provenance`` (``attrs["provenance"]``), the record every result carries.
"""
from __future__ import annotations

import html as _html

import pandas as pd

from workbench.attribution.render import page, render_tokens
from workbench.display import readable
from workbench.provenance import model_name
from workbench.results import ResultFrame


class AttributionFrame(ResultFrame):
    """Token attributions for one (prompt, target). See :func:`workbench.attribute`."""

    def to_frame(self) -> pd.DataFrame:
        out = pd.DataFrame(self, copy=True)
        out.attrs = dict(self.attrs)
        return out

    def summary(self) -> pd.DataFrame:
        """The sanity checks: check, value, reference, ok, note."""
        return pd.DataFrame(self.attrs.get("sanity", []), columns=["check", "value", "reference", "ok", "note"])

    @property
    def ok(self) -> bool | None:
        """True when every judged sanity check passed (None when none was judged)."""
        judged = [r["ok"] for r in self.attrs.get("sanity", []) if r["ok"] is not None]
        return all(judged) if judged else None

    def html(self) -> str:
        """Self-contained HTML fragment: highlighted tokens and the sanity checks."""
        a = self.attrs
        header = (f"<b>{_html.escape(a.get('method', ''))}</b> on {_html.escape(model_name(a))}: "
                  f"target {_html.escape(repr(a.get('target', '')))}"
                  + (f" vs contrast {_html.escape(repr(a['contrast']))}" if a.get("contrast") else "")
                  + f", log p = {a.get('logprob_target', float('nan')):.4g}; ablated to "
                  f"{_html.escape(repr(a.get('baseline_token', '')))}")
        return render_tokens(a.get("sequence", []), self["attribution"].to_numpy(), header, a.get("sanity"))

    def save_html(self, path) -> None:
        """Write a complete HTML page (opens offline in any browser)."""
        from pathlib import Path
        Path(path).write_text(page(self.html(), title=f"attribution: {self.attrs.get('target', '')}"),
                              encoding="utf-8")

    def _repr_html_(self) -> str:
        return self.html() + readable(pd.DataFrame(self))._repr_html_()

    def plot(self, ax=None, **kwargs):  # noqa: D401 - replaces pandas' accessor on purpose
        """Bar chart of the attribution per token (and of the randomised model's, if present).
        Returns the matplotlib Axes."""
        import matplotlib.pyplot as plt
        import numpy as np
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, 0.45 * len(self)), 3))
        x = np.arange(len(self))
        has_random = "attribution_random" in self.columns
        width = 0.4 if has_random else 0.8
        ax.bar(x - (width / 2 if has_random else 0), self["attribution"], width=width, label="model", **kwargs)
        if has_random:
            ax.bar(x + width / 2, self["attribution_random"], width=width, label="randomised model", alpha=0.6)
            ax.legend(fontsize=8)
        ax.set_xticks(x, [t.replace("\n", "\\n") for t in self["token"]], rotation=60, ha="right", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel("attribution (nats)")
        ax.set_title(f"{self.attrs.get('method', '')}: {self.attrs.get('target', '')!r}", fontsize=9)
        return ax
