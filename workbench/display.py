"""One way to show a token, in every table, plot, widget and HTML renderer of the package.

Tokenizers spell whitespace differently: byte-level BPE (GPT-2, SmolLM2) writes a leading space
as ``Ġ`` and a newline as ``Ċ``, SentencePiece (Llama, Gemma) writes a space as ``▁``, and decoded
text has real spaces, which are invisible at the edge of a table cell or a tick label. Every
display goes through :func:`show_token`: a space is ``␣``, a newline ``↵``, a tab ``⇥``. The
frames keep the tokenizer's own pieces (they are data, and round-trip through the tokenizer);
only what is shown changes.

>>> show_token("Ġcat"), show_token("▁cat"), show_token(" cat"), show_token("Ċ"), show_token("\\n\\n")
('␣cat', '␣cat', '␣cat', '↵', '↵↵')
>>> show_tokens(["The", "Ġcat"])
['The', '␣cat']
"""
from __future__ import annotations

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
