"""One way to show a token, in every table, plot, widget and HTML renderer of the package.

Tokenizers spell whitespace differently: byte-level BPE (GPT-2, SmolLM2) writes a leading space
as ``Ġ`` and a newline as ``Ċ``, SentencePiece (Llama, Gemma) writes a space as ``▁``, and decoded
text has real spaces, which are invisible at the edge of a table cell or a tick label. Every
display goes through :func:`show_token`: a space is ``␣``, a newline ``↵``, a tab ``⇥``. The
frames keep the tokenizer's own pieces (they are data, and round-trip through the tokenizer);
only what is shown changes.

Tables that hold tokens show them this way too: a result that is a table (the logit lens, an
attribution, a scoring frame with its ``tokens``) renders through :func:`readable`, and so does
any frame or column derived from it (``lens.tail(8)``, ``lens["token"]``): those are
:class:`TokenFrame` and :class:`TokenSeries`, plain pandas data whose display alone differs.

>>> show_token("Ġcat"), show_token("▁cat"), show_token(" cat"), show_token("Ċ"), show_token("\\n\\n")
('␣cat', '␣cat', '␣cat', '↵', '↵↵')
>>> show_tokens(["The", "Ġcat"])
['The', '␣cat']
"""
from __future__ import annotations

import html
import math

import pandas as pd

# byte-level BPE's stand-ins for whitespace bytes, SentencePiece's space, and raw whitespace
_MAP = str.maketrans({"Ġ": "␣", "Ċ": "↵", "ĉ": "⇥", "▁": "␣", " ": "␣", "\n": "↵", "\t": "⇥", "\r": "↵"})

# the columns of the package's frames that hold tokens (or lists of them)
TOKEN_COLUMNS = ("token", "tokens", "top_tokens", "query_token", "key_token", "target", "baseline")


def show_token(token) -> str:
    """The display form of one token (or a short piece of decoded text); ``None`` stays ``""``."""
    if token is None or (isinstance(token, float) and token != token):
        return ""
    return str(token).translate(_MAP)


def show_tokens(tokens) -> list[str]:
    """:func:`show_token` of each token of a sequence."""
    return [show_token(t) for t in tokens]


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with its token columns (:data:`TOKEN_COLUMNS`) in display form, for
    showing a table; the data itself keeps the tokenizer's pieces.

    >>> readable(pd.DataFrame({"token": ["Ġa", "b"], "top_tokens": [["Ġx"], ["y"]], "p": [0.5, 0.5]}))
      token top_tokens    p
    0    ␣a       [␣x]  0.5
    1     b        [y]  0.5
    """
    out = frame.copy()
    for col in TOKEN_COLUMNS:
        if col in out.columns:  # object or string dtype; the map leaves numbers alone
            out[col] = out[col].map(lambda v: show_tokens(v) if isinstance(v, (list, tuple)) else
                                    (show_token(v) if isinstance(v, str) else v))
    return out


def has_tokens(frame) -> bool:
    """Whether ``frame`` (a DataFrame, or a Series by its name) holds a token column."""
    names = frame.columns if isinstance(frame, pd.DataFrame) else [getattr(frame, "name", None)]
    return any(c in TOKEN_COLUMNS for c in names)


def _shown_series(series: pd.Series) -> pd.Series:
    plain = pd.Series(series, copy=True)
    return readable(plain.to_frame())[plain.name] if has_tokens(plain) else plain


class TokenSeries(pd.Series):
    """A column of a table that holds tokens: a pandas Series whose display shows its tokens as
    text (:func:`show_token`); the values are the tokenizer's pieces, unchanged.

    >>> s = TokenSeries(["Ġcat", "Ċ"], name="token")
    >>> s.tolist(), s.to_string(index=False).split()
    (['Ġcat', 'Ċ'], ['␣cat', '↵'])
    """

    @property
    def _constructor(self):
        return TokenSeries

    @property
    def _constructor_expanddim(self):
        return TokenFrame

    def __repr__(self) -> str:
        return repr(_shown_series(self))

    def to_string(self, *args, **kwargs) -> str:
        return _shown_series(self).to_string(*args, **kwargs)

    def _repr_html_(self) -> str | None:  # pandas shows a Series as text; so does this one
        return None


class TokenFrame(pd.DataFrame):
    """A table derived from a result that holds tokens (a slice of the logit lens, its
    ``.tail(8)``): plain pandas data whose display (text and HTML) goes through :func:`readable`,
    so a token is ``␣cat``, never ``Ġcat``. The values are the tokenizer's pieces, unchanged.

    >>> df = TokenFrame({"token": ["Ġcat", "Ċ"], "p": [0.5, 0.5]})
    >>> df["token"].tolist(), "␣cat" in repr(df), "Ġ" in repr(df), "Ġ" in df._repr_html_()
    (['Ġcat', 'Ċ'], True, False, False)
    """

    @property
    def _constructor(self):
        return TokenFrame

    @property
    def _constructor_sliced(self):
        return TokenSeries

    def _shown(self) -> pd.DataFrame:
        return readable(pd.DataFrame(self))

    def __repr__(self) -> str:
        return repr(self._shown())

    def to_string(self, *args, **kwargs) -> str:
        return self._shown().to_string(*args, **kwargs)

    def _repr_html_(self) -> str | None:
        return self._shown()._repr_html_()


P_FLOOR = 1e-4  # below it a p-value is shown as "< 1e-4": its digits say nothing more


def format_p(p, floor: float = P_FLOOR) -> str:
    """A p-value as a reader should see it: two significant digits, ``< 1e-4`` below ``floor``
    (never ``0.0``: a p-value is not zero), ``–`` where there is none.

    >>> [format_p(p) for p in (0.0, 1.44e-05, 2.667e-10, 0.000312, 0.0228, 0.31, 1.0, float("nan"), None)]
    ['< 1e-4', '< 1e-4', '< 1e-4', '0.00031', '0.023', '0.31', '1', '–', '–']
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    p = float(p)
    if p < floor:
        return f"< 1e{int(round(math.log10(floor)))}" if math.log10(floor).is_integer() else f"< {floor:g}"
    return f"{p:.2g}"


def p_equals(p, floor: float = P_FLOOR) -> str:
    """``p = 0.023`` or ``p < 1e-4``: a p-value in a sentence or a title.

    >>> p_equals(1.44e-05), p_equals(0.0228)
    ('p < 1e-4', 'p = 0.023')
    """
    shown = format_p(p, floor)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def report_table(frame: pd.DataFrame, p_columns=(), wrap=(), digits: int = 3):
    """``frame`` styled for reading in a notebook (a pandas ``Styler``): tokens as text, p-value
    columns through :func:`format_p`, other numbers to ``digits`` decimals, the ``wrap`` columns
    (long sentences such as a verdict) wrapped in full instead of cut at 50 characters, no index.

    >>> t = report_table(pd.DataFrame({"test": ["a"], "p": [0.0], "v": [0.84333], "verdict": ["x " * 40]}),
    ...                  p_columns=["p"], wrap=["verdict"])
    >>> html = t.to_html()
    >>> "&lt; 1e-4" in html, "0.843" in html, ("x " * 40).strip() in html
    (True, True, True)
    """
    shown = readable(frame).reset_index(drop=True)
    numbers = [c for c in shown.columns if c not in p_columns and pd.api.types.is_float_dtype(shown[c])]
    styler = shown.style.hide(axis="index")
    # escape="html" escapes the cells before a formatter runs, not what it returns: "< 1e-4" is escaped here
    styler = styler.format({**{c: (lambda p: html.escape(format_p(p))) for c in p_columns},
                            **{c: f"{{:.{digits}f}}" for c in numbers}}, na_rep="–", escape="html")
    if wrap:
        styler = styler.set_properties(subset=list(wrap), **{"white-space": "normal", "text-align": "left",
                                                              "min-width": "18em"})
    return styler
