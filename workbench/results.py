"""The one result shape used across the package: ``.to_frame()`` (tidy pandas), ``.summary()``
and ``.plot()``, plus the provenance that makes a number re-checkable."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from workbench.display import TokenFrame, TokenSeries, has_tokens, readable


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
        return readable(self.summary())._repr_html_()


class ResultFrame(pd.DataFrame):
    """The result shape for results that are tables first (scoring frames, the logit lens, paired
    comparisons, attributions): it *is* a pandas DataFrame, so ``df.logprob``, ``df["prob"]``,
    filtering and pandas' own ``df.plot.bar(...)`` work as before, and it adds what every result
    has: ``.to_frame()`` (a plain DataFrame copy, attrs included), ``.summary()``, ``.plot()``
    (with no arguments, or only ``ax=``: the result's own view; with pandas' arguments, pandas'
    plot) and ``.provenance`` (``attrs["provenance"]``: the same record as every other result).

    Any frame derived from it (a slice, ``sort_values``, ``merge``) is data, no longer the result
    (its ``attrs`` travel as pandas propagates them): a plain DataFrame, or, where the result holds
    tokens, a :class:`~workbench.display.TokenFrame` (a plain DataFrame whose display shows tokens
    as text, as the result's own display does: ``␣cat``, never the tokenizer's ``Ġcat``).

    >>> import workbench as wb
    >>> from workbench.testing import tiny_model
    >>> df = wb.loglikelihood(tiny_model("gpt2"), [("The cat", " sat"), ("A dog", " ran")], cache=False)
    >>> type(df).__name__, isinstance(df, pd.DataFrame), sorted(df.provenance)[:3]
    ('ScoreFrame', True, ['backend', 'model', 'options'])
    >>> int(df.summary().loc["logprob", "n"]), isinstance(df[["logprob"]], ResultFrame)
    (2, False)
    >>> df["tokens"].tolist()[0], "Ġ" in repr(df.tail(1)), "Ġ" in df._repr_html_()
    (['Ġs', 'at'], False, False)
    """

    @property
    def _constructor(self):
        return TokenFrame if has_tokens(self) else pd.DataFrame

    @property
    def _constructor_sliced(self):
        return TokenSeries if has_tokens(self) else pd.Series

    def __repr__(self) -> str:  # tokens shown as text, like every table of the package
        return repr(readable(pd.DataFrame(self))) if has_tokens(self) else super().__repr__()

    def to_string(self, *args, **kwargs) -> str:
        return (readable(pd.DataFrame(self)) if has_tokens(self) else pd.DataFrame(self)).to_string(*args, **kwargs)

    def _repr_html_(self) -> str | None:
        return readable(pd.DataFrame(self))._repr_html_() if has_tokens(self) else super()._repr_html_()

    @classmethod
    def of(cls, frame: pd.DataFrame):
        """``frame`` as this result type (its data is not copied; its attrs are kept)."""
        out = cls(frame)
        out.attrs = dict(frame.attrs)
        return out

    @property
    def provenance(self) -> dict:
        return self.attrs.get("provenance", {})

    def to_frame(self) -> pd.DataFrame:
        out = pd.DataFrame(self, copy=True)
        out.attrs = dict(self.attrs)
        return out

    def summary(self) -> pd.DataFrame:
        """One row per numeric column: n (non-missing), mean, std, min, median, max."""
        num = pd.DataFrame(self).select_dtypes("number")
        return pd.DataFrame({"n": num.count(), "mean": num.mean(), "std": num.std(), "min": num.min(),
                             "median": num.median(), "max": num.max()}).rename_axis("column")

    @property
    def plot(self):
        return _ResultPlot(self)

    def default_plot(self, ax=None, **kwargs):
        """The result's own view (what ``.plot()`` draws); subclasses say what it is."""
        raise NotImplementedError(f"{type(self).__name__} has no default plot; use pandas' df.plot.<kind>(...)")


def _plot_accessor():
    from pandas.plotting._core import PlotAccessor  # pandas' own df.plot: kept for every other call
    return PlotAccessor


class _ResultPlot:
    """``.plot()``: the result's own view; ``.plot(x=..., kind=...)`` and ``.plot.bar(...)``: pandas'."""

    def __init__(self, frame: ResultFrame):
        self._frame = frame

    def __call__(self, *args, **kwargs):
        if not args and set(kwargs) <= {"ax"}:
            return self._frame.default_plot(**kwargs)
        return _plot_accessor()(pd.DataFrame(self._frame))(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(_plot_accessor()(pd.DataFrame(self._frame)), name)


class ScoreFrame(ResultFrame):
    """What the scoring functions return (``wb.loglikelihood``, ``wb.perplexity``, ``wb.token_stats``,
    ``wb.pseudo_loglikelihood``, ``wb.fill_mask``, ``wb.generate``): one row per request, with
    ``attrs["scoring"]`` (the conventions used) and ``attrs["provenance"]``. ``.plot()``: a
    histogram of the main score (log-probability, perplexity or pseudo-log-likelihood; for
    generations, the number of new tokens)."""

    SCORE_COLUMNS = ("ppl", "logprob", "pll", "score", "mean_logprob", "n_new_tokens")  # the first present

    def default_plot(self, ax=None, **kwargs):
        import matplotlib.pyplot as plt
        column = next((c for c in self.SCORE_COLUMNS if c in self.columns), None)
        if column is None:
            return super().default_plot(ax=ax)
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        values = pd.to_numeric(self[column], errors="coerce").dropna()
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), **kwargs)
        ax.set_xlabel(column)
        ax.set_ylabel("requests")
        ax.set_title(f"{self.attrs.get('model', '')}: {column} of {len(values)} requests", fontsize=10)
        return ax
