"""N-gram overlap between benchmark items and a training-corpus sample (13-grams by default).

The definition of lm-evaluation-harness's decontamination (its "janitor") and of the GPT-3 paper
(Brown et al. 2020, appendix C): texts are normalised (lowercased, punctuation removed, split on
whitespace into words), an item's n-grams are its runs of ``n`` consecutive words, and an item
is flagged as contaminated when any of its n-grams occurs in the corpus. Items with fewer than
``n`` words have no n-grams and cannot be flagged (``n_ngrams = 0``; the summary counts them).

What the corpus is: a path (file or folder) or a list of paths, strings (one document each) or
``datasets`` rows. A path that does not exist is refused, not read as a one-line document
(:func:`check_corpus`: a string with no space and a path separator or a file suffix is taken for
a path); so is an empty corpus, and one that holds no words once read (it could flag nothing,
and 0 flagged would read as "clean").

Streaming and memory-bounded: the items' n-grams are held as a set of 64-bit hashes (the
benchmark is the small side); the corpus is read one line (file) or one document (iterable) at a
time, with the last ``n - 1`` words carried over between the lines of a file so that n-grams
across line breaks count. Memory is the item n-gram set plus one line, however big the corpus.

>>> r = ngram_overlap(["The quick brown fox jumps over the lazy dog"], ["a quick brown fox, jumping"], n=3)
>>> int(r.n_ngrams[0]), int(r.n_hits[0]), bool(r.contaminated[0])   # "quick brown fox" is in the corpus
(7, 1, True)
"""
from __future__ import annotations

import gzip
import hashlib
import re
import string
from collections import deque
from pathlib import Path

import pandas as pd

from workbench.errors import DataError, InvalidInputError

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def words(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower()).split()


def _h(gram) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(gram).encode(), digest_size=8).digest(), "little")


def _grams(ws: list[str], n: int):
    for i in range(len(ws) - n + 1):
        yield _h(ws[i:i + n])


_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".tsv", ".gz", ".md", ".xml", ".html", ".parquet")


def _path_like(doc: str) -> bool:
    """A corpus string meant as a path: one line, no spaces, and a folder separator or a file suffix."""
    return (len(doc) < 4096 and "\n" not in doc and " " not in doc.strip()
            and ("/" in doc or "\\" in doc or doc.lower().endswith(_SUFFIXES)))


def check_corpus(corpus):
    """The corpus as given, refused where it cannot be what was meant: a str/Path that does not
    exist, an empty list, a list item that looks like a path but does not exist. An iterator is
    passed through untouched (it is read once, by :func:`ngram_overlap`, which refuses it if it
    holds no words)."""
    if isinstance(corpus, (str, Path)):
        if not Path(corpus).exists():
            raise InvalidInputError(f"corpus={str(corpus)!r}: no such file or folder (looked from {Path.cwd()}); give "
                                    "an existing path, or the corpus texts as a list (corpus=[text, ...])")
        return corpus
    if isinstance(corpus, (list, tuple)):
        if not corpus:
            raise InvalidInputError("corpus= is empty: give corpus files, a folder, or texts; an empty corpus can flag "
                                    "nothing, and 0 flagged would read as clean")
        for k, doc in enumerate(corpus):
            if isinstance(doc, str) and _path_like(doc) and not Path(doc).exists():
                raise InvalidInputError(f"corpus item {k} ({doc!r}) looks like a path, but no such file or folder "
                                        "exists; fix the path, or give texts (a text is read as a path only if it "
                                        "has no space)")
            if isinstance(doc, Path) and not doc.exists():
                raise InvalidInputError(f"corpus item {k} ({str(doc)!r}): no such file or folder")
    return corpus


def _documents(corpus):
    """Yield (document id, iterator of lines) from paths / a folder / an iterable of strings or dicts."""
    if isinstance(corpus, (str, Path)):
        corpus = [corpus]
    for k, doc in enumerate(corpus):
        if isinstance(doc, Path) or (isinstance(doc, str) and len(doc) < 4096 and "\n" not in doc
                                     and Path(doc).exists()):
            path = Path(doc)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for f in files:
                opener = gzip.open if f.suffix == ".gz" else open
                try:
                    with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
                        yield str(f), fh
                except OSError as e:
                    raise DataError(f"cannot read corpus file {f}: {e}") from None
        elif isinstance(doc, dict):   # a `datasets` row: its "text" field
            if "text" not in doc:
                raise InvalidInputError(f"corpus document {k} is a dict without a 'text' field (keys {sorted(doc)})")
            yield k, [doc["text"]]
        elif isinstance(doc, str):
            yield k, [doc]
        else:
            raise InvalidInputError(f"corpus document {k} is a {type(doc).__name__}; give file paths, strings or "
                                    "dicts with a 'text' field")


def ngram_overlap(items: list[str], corpus, n: int = 13) -> pd.DataFrame:
    """One row per item: item, n_ngrams, n_hits (distinct item n-grams found), overlap (their
    share), contaminated (any hit). ``attrs``: n, corpus documents and words read."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"n must be a positive int (13 as lm-evaluation-harness), got {n!r}")
    corpus = check_corpus(corpus)
    per_item = [set(_grams(words(t), n)) for t in items]
    wanted = set().union(*per_item) if per_item else set()
    found, n_docs, n_words = set(), 0, 0
    for _, lines in _documents(corpus):
        n_docs += 1
        window = deque(maxlen=n)
        for line in lines:
            for w in words(line):
                n_words += 1
                window.append(w)
                if len(window) == n:
                    h = _h(window)
                    if h in wanted:
                        found.add(h)
    if n_words == 0:
        raise InvalidInputError(f"the corpus holds no words ({n_docs} document(s) read): it can flag nothing, and 0 "
                                "flagged would read as clean; check the files or the texts given as corpus=")
    rows = []
    for i, grams in enumerate(per_item):
        hits = len(grams & found)
        rows.append({"item": i, "n_ngrams": len(grams), "n_hits": hits,
                     "overlap": hits / len(grams) if grams else float("nan"), "contaminated": hits > 0})
    out = pd.DataFrame(rows, columns=["item", "n_ngrams", "n_hits", "overlap", "contaminated"])
    out.attrs.update(n=n, corpus_documents=n_docs, corpus_words=n_words)
    return out
