"""Reading data files for probes and tasks in one place: the encoding, the table format and the
columns are checked here, so every loader says the same clear thing about a bad file.

- Text is decoded as UTF-8 (a byte-order mark is dropped). A file in another encoding is never
  guessed at silently: the :class:`~workbench.errors.DataError` names the file and the line and
  says to pass ``encoding=`` (probes: ``wb.run_probe(..., encoding="latin-1")``; tasks:
  ``load_task(..., encoding="latin-1")``).
- :func:`read_table` reads ``.csv``/``.tsv``/``.jsonl``/``.json`` (each optionally ``.gz``) by the
  file's suffix, so a JSON lines file handed to a CSV probe is read as what it is and then fails
  the column check, instead of ending in a pandas ``ParserError``.
- :func:`check_columns` names the missing and the unexpected columns and who expected them.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
>>> _ = open(path, "w").write('{"sentence_good": "A cat sat.", "sentence_bad": "A cat sit."}\\n')
>>> read_table(path, required=("sent_more", "sent_less"), what="probe 'crows_pairs'")
Traceback (most recent call last):
    ...
workbench.errors.DataError: ...missing column(s) ['sent_less', 'sent_more']; unexpected column(s) ['sentence_bad', 'sentence_good']...
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
from pathlib import Path

from workbench.errors import DataError, InvalidInputError


def check_encoding(encoding) -> str:
    """The codec name for ``encoding`` (None: UTF-8), or an :class:`InvalidInputError`."""
    if encoding is None:
        return "utf-8"
    if not isinstance(encoding, str):
        raise InvalidInputError(f"encoding must be a codec name such as 'utf-8' or 'latin-1', got {encoding!r}")
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InvalidInputError(f"unknown encoding {encoding!r}: pass a Python codec name such as "
                                "'utf-8', 'latin-1' or 'cp1252'") from None


def read_text(path, encoding: str | None = None) -> str:
    """The whole text of ``path`` (``.gz`` decompressed), decoded with ``encoding`` (UTF-8 by
    default); a file that does not decode raises a DataError naming the file, line and fix."""
    path = Path(path)
    codec = check_encoding(encoding)
    try:
        raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read the data file {str(path)!r}: {e}") from None
    try:
        return raw.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        hint = ("pass its encoding, e.g. encoding='latin-1' or encoding='cp1252'" if encoding is None
                else "pass the file's real encoding")
        raise DataError(f"{str(path)!r} is not valid {codec} text (byte {raw[e.start:e.start + 1]!r} on line {line}): "
                        f"{hint}, or re-save the file as UTF-8") from None


def file_format(path) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``json`` from the name (a ``.gz`` suffix is looked through)."""
    name = Path(path).name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for fmt in ("jsonl", "json", "csv", "tsv"):
        if name.endswith("." + fmt):
            return fmt
    return ""


def read_jsonl(path, encoding: str | None = None):
    """``(line_number, value_or_None, error_or_None)`` for each non-blank line of a JSON lines file."""
    out = []
    for n, line in enumerate(read_text(path, encoding).splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line), None))
            except json.JSONDecodeError as e:
                out.append((n, None, e.msg))
    return out


def read_records(path, encoding: str | None = None, what: str = "this data") -> list[dict]:
    """Rows of a ``.jsonl``/``.json``/``.csv``/``.tsv`` file (optionally ``.gz``) as dicts (CSV
    cells are strings, an empty cell ``""``)."""
    import csv

    path = Path(path)
    fmt = file_format(path)
    if fmt == "jsonl":
        rows = []
        for n, value, err in read_jsonl(path, encoding):
            if err is not None:
                raise DataError(f"{path}: line {n} is not valid JSON ({err}); fix or remove it")
            if not isinstance(value, dict):
                raise DataError(f"{path}: line {n} is a JSON {type(value).__name__}, not an object; "
                                f"{what} reads one object per line")
            rows.append(value)
        return rows
    if fmt == "json":
        try:
            data = json.loads(read_text(path, encoding))
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))  # {"data": [...]}
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        return data
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(read_text(path, encoding), newline=""),
                                delimiter="\t" if fmt == "tsv" else ",")
        rows = []
        for row in reader:
            if None in row:  # more cells than header fields: not a table of this shape
                raise DataError(f"{path}: line {reader.line_num} has more cells than the header has columns "
                                f"{reader.fieldnames}; is it really a {fmt.upper()} file?")
            rows.append(row)
        return rows
    raise DataError(f"{path}: unsupported data file type; use .jsonl, .json, .csv or .tsv (optionally .gz)")


def read_table(path, *, required=(), optional=(), what: str = "this data", encoding: str | None = None,
               sep: str | None = None):
    """A pandas DataFrame of a data file, its format taken from its suffix (``sep`` forces a
    delimited text file), checked to have the ``required`` columns (see :func:`check_columns`)."""
    import pandas as pd

    path = Path(path)
    fmt = "csv" if sep is not None and file_format(path) not in ("jsonl", "json") else file_format(path)
    if fmt in ("jsonl", "json"):
        df = pd.DataFrame(read_records(path, encoding, what))
    else:
        try:
            df = pd.read_csv(io.StringIO(read_text(path, encoding)), sep=sep or ("\t" if fmt == "tsv" else ","))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path} is not a table {what} can read ({str(e).strip()}); pass its data file "
                            f"(columns {sorted(required)})") from None
    check_columns(df.columns, required, optional, what=what, path=path)
    return df


def check_columns(columns, required, optional=(), *, what: str, path=None) -> None:
    """A :class:`DataError` when a ``required`` column is missing, naming the missing ones, the
    unexpected ones (neither required nor ``optional``) and ``what`` expected them."""
    cols = {str(c) for c in columns if not str(c).startswith("Unnamed:")}
    missing = sorted(set(required) - cols)
    if not missing:
        return
    unexpected = sorted(cols - set(required) - set(optional))
    where = f"{str(path)!r}" if path is not None else "the table given"
    raise DataError(f"{where} is not data for {what}: missing column(s) {missing}; unexpected column(s) "
                    f"{unexpected}. {what} expects {sorted(required)}"
                    + (f" (optionally {sorted(optional)})" if optional else "")
                    + ": pass the right file, or rename its columns")
