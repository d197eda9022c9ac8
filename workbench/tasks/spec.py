"""Benchmark task specs: one readable format (a YAML file or a dict) that loads into :class:`Task`.

What each kind of task renders, checks, scores and reports is one row of the table in
:mod:`workbench.tasks.kinds` (multiple choice, minimal pairs, perplexity, generation, and any
kind registered with :func:`~workbench.tasks.kinds.register_task_kind`).

``format: chat`` (kinds that list it: multiple_choice and generation; ``system_prompt``
optional): the context or prompt is the user turn of the model's chat template and the choice (or
completion) the assistant's reply (:mod:`workbench.scoring.chat`); the default ``raw`` scores the
text as given.

Templates use ``str.format`` fields (``"Question: {question}\\nAnswer:"``), plain field names only
(no ``{x.attr}``, ``{x[0]}`` or ``{x!r}``). A task's hash covers its rendered items (data +
templates) and its scoring options, and is stored with every result.

Rows are never changed silently: a row whose template fields are ``null``/missing values, that
renders an empty sentence, or a minimal pair whose two sentences are equal is skipped and
recorded with its reason in ``task.skipped`` (one warning says how many); a file whose columns do
not fit the templates at all is a :class:`~workbench.errors.DataError` naming the missing and the
unexpected columns.

>>> import workbench as wb
>>> task = wb.load_task("capitals")
>>> task.kind, len(task.hash)
('multiple_choice', 16)
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from workbench.datafiles import check_encoding
from workbench.errors import DataError, InvalidInputError, WorkbenchError
from workbench.scoring.chat import check_format
from workbench.tasks.data import read_file_rows, read_rows, render, template_fields
from workbench.tasks.kinds import KINDS, task_kind

# spec fields that change scores (besides the items themselves): part of the hash (the options
# of a registered kind are added to it, so the hashes of the built-in kinds stay as they were)
_SCORING_OPTIONS = ("kind", "target_delimiter", "scoring", "regex", "ignore_case", "max_new_tokens", "stop")
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "data" / "tasks"


class UnknownTaskError(WorkbenchError, KeyError):
    def __str__(self):
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Task:
    """A benchmark task. Build with :func:`load_task`; fields mirror the YAML keys."""

    name: str
    kind: str
    data: Any = field(default=None, repr=False, compare=False)
    description: str = ""
    citation: str = ""
    id: str | None = None            # template for a stable item id; default: the row number
    group: str | None = None         # row field that groups items (BLiMP: UID); ``limit`` is per group
    groups: tuple | None = None      # keep only these groups (a selection, like ``limit``)
    keep: tuple = ()                 # row fields stored with each item's scores
    context: str = ""                # multiple_choice
    choices: Any = None
    target: str | None = None        # multiple_choice: gold index or text; generation: gold answer
    target_type: str = "index"       # multiple_choice: "index" or "text"
    target_delimiter: str = " "
    good: str | None = None          # minimal_pairs
    bad: str | None = None
    text: str | None = None          # perplexity
    prompt: str | None = None        # generation
    scoring: str = "exact_match"     # generation: "exact_match" or "regex"
    regex: str | None = None
    ignore_case: bool = False
    max_new_tokens: int = 32
    stop: tuple = ("\n",)
    encoding: str | None = None      # of the data file; None: UTF-8
    format: str = "raw"              # multiple_choice/generation: "raw" text or the model's "chat" template
    system_prompt: str | None = None  # format="chat": an optional system turn
    base_dir: str | None = field(default=None, repr=False, compare=False)
    # a registered kind's own spec keys (its templates and options: workbench.tasks.kinds)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        kind = task_kind(self.kind)  # an unknown kind names the known ones
        unknown = sorted(set(self.extra) - set(kind.templates) - set(kind.options))
        if unknown:
            raise InvalidInputError(f"task {self.name!r}: unknown spec key(s) {unknown} for a {self.kind} task")
        missing = [k for k in kind.required if self.template(k) in (None, "")]
        if missing:
            raise InvalidInputError(f"task {self.name!r} of kind {self.kind} needs {missing} in its spec")
        if self.kind == "generation" and self.scoring not in ("exact_match", "regex"):
            raise InvalidInputError(f"task {self.name!r}: scoring must be 'exact_match' or 'regex'")
        if self.scoring == "regex" and not self.regex:
            raise InvalidInputError(f"task {self.name!r}: scoring='regex' needs a 'regex' to extract the answer")
        check_format(self.format, None, f"task {self.name!r}", self.system_prompt)
        if self.format not in kind.formats:
            chat = [k.name for k in KINDS.values() if "chat" in k.formats]
            raise InvalidInputError(f"task {self.name!r}: format='chat' applies to {' and '.join(chat)} tasks (a "
                                    f"question and its answer); a {self.kind} task scores text as it is: use "
                                    "format='raw'")
        if self.target_type not in ("index", "text"):
            raise InvalidInputError(f"task {self.name!r}: target_type must be 'index' or 'text'")
        for name in ("groups", "keep", "stop"):  # YAML gives lists; keep the dataclass hashable
            value = getattr(self, name)
            if isinstance(value, (list, str)):
                object.__setattr__(self, name, tuple([value] if isinstance(value, str) else value))
        if self.encoding is not None:
            check_encoding(self.encoding)
        for key, template in self._templates().items():
            try:
                template_fields(template)
            except DataError as e:
                raise DataError(f"task {self.name!r}, {key}: {e}") from None

    def template(self, key: str):
        """The spec's value for ``key``: a field of this class, or a registered kind's own key."""
        return getattr(self, key) if key in _fields() else self.extra.get(key)

    def _templates(self) -> dict:
        """The spec's templates by key (``choices.0`` for a list of choice templates)."""
        out = {"id": self.id} if isinstance(self.id, str) else {}
        for k in task_kind(self.kind).templates:
            value = self.template(k)
            if isinstance(value, (list, tuple)):
                out.update({f"{k}.{i}": v for i, v in enumerate(value) if isinstance(v, str)})
            elif isinstance(value, str):
                out[k] = value
        return out

    def _needed_fields(self) -> list[str]:
        fields = [f for t in self._templates().values() for f in template_fields(t)]
        return list(dict.fromkeys(fields + ([self.group] if self.group else [])))

    # ---- items -----------------------------------------------------------------------------
    @property
    def all_items(self) -> list[dict]:
        """Every usable item, rendered: ``id``, ``index``, ``group`` plus the kind's fields."""
        return self._loaded[0]

    @property
    def skipped(self) -> list[dict]:
        """The rows left out, each ``{"row": index, "group": ..., "reason": ...}`` (null fields,
        empty or equal sentences): counted and shown (a warning when items are selected), never scored."""
        return self._loaded[1]

    @functools.cached_property
    def _loaded(self) -> tuple[list[dict], list[dict]]:
        rows = read_rows(self.data, Path(self.base_dir) if self.base_dir else None, self.encoding)
        if not rows:
            raise DataError(f"task {self.name!r} has no rows")
        cols = set().union(*(r.keys() for r in rows))
        needed = self._needed_fields()   # parsed once, not once per row
        missing = [f for f in needed if f not in cols]
        if missing:  # a file of another schema: say so once, not once per row
            where = f"the data {str(self.data)!r}" if isinstance(self.data, (str, Path)) else "the data"
            unexpected = sorted(map(str, cols - set(needed) - set(self.keep)))
            raise DataError(f"task {self.name!r} ({self.kind}) needs field(s) {missing}, which no row of {where} "
                            f"has; unexpected column(s) {unexpected}. Pass the right data, or fix the templates "
                            f"{self._templates()}")
        items, seen, skipped = [], set(), []
        for i, row in enumerate(rows):
            reason = self._unusable(row, needed)
            item = None if reason else self._render(i, row)
            reason = reason or self._unusable_item(item)
            if reason:
                group = row.get(self.group) if self.group else None
                skipped.append({"row": i, "group": None if group is None else str(group), "reason": reason})
                continue
            if item["id"] in seen:
                raise DataError(f"task {self.name!r}: item id {item['id']!r} (row {i}) is not unique; "
                                "give the spec an 'id' template that is")
            seen.add(item["id"])
            items.append(item)
        if not items:
            raise DataError(f"task {self.name!r}: all {len(rows)} rows were skipped, e.g. row "
                            f"{skipped[0]['row']}: {skipped[0]['reason']}")
        return items, skipped

    def _unusable(self, row: dict, needed: list[str]) -> str | None:
        """Why a row cannot be rendered (a null or missing value in a field of ``needed``, the
        fields its templates use), or None."""
        missing = [f for f in needed if f not in row]
        null = [f for f in needed if f in row and (row[f] is None or (isinstance(row[f], float) and math.isnan(row[f])))]
        if missing or null:
            return "; ".join(([f"missing field(s) {missing}"] if missing else []) +
                             ([f"null value in field(s) {null}"] if null else []))
        return None

    def _unusable_item(self, item: dict) -> str | None:
        """Why a rendered item cannot be scored fairly (an empty text, equal pair), or None."""
        return task_kind(self.kind).unusable(item)

    def _render(self, i: int, row: dict) -> dict:
        where = f"task {self.name!r}, row {i}"
        item = {"id": str(render(self.id, row, where)) if self.id else str(i), "index": i,
                "group": str(row[self.group]) if self.group else None}
        if self.group and self.group not in row:
            raise DataError(f"{where}: group field {self.group!r} is missing")
        item.update({k: row.get(k) for k in self.keep})
        item.update(task_kind(self.kind).render_item(self, row, where))
        return item

    def select(self, limit: int | None = None) -> list[dict]:
        """The items a run scores: the chosen ``groups``, then the first ``limit`` of each group
        (of the whole task when it has no groups), in data order."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}")
        items = self.all_items
        if self.groups:
            unknown = set(self.groups) - {it["group"] for it in items}
            if unknown:
                raise InvalidInputError(f"task {self.name!r} has no group(s) {sorted(unknown)}; "
                                        f"see task.group_names")
            items = [it for it in items if it["group"] in self.groups]
        skipped = [s for s in self.skipped if not self.groups or s["group"] in self.groups]
        if skipped:  # said where the rows are chosen, so only the skips of the chosen groups count
            reasons = sorted({s["reason"] for s in skipped})
            warnings.warn(f"task {self.name!r}: {len(skipped)} of {len(skipped) + len(items)} rows skipped "
                          f"({'; '.join(reasons[:3])}); see task.skipped", UserWarning, stacklevel=2)
        if limit is None:
            return items
        counts, out = {}, []
        for it in items:
            counts[it["group"]] = counts.get(it["group"], 0) + 1
            if counts[it["group"]] <= limit:
                out.append(it)
        return out

    @property
    def group_names(self) -> list[str]:
        return list(dict.fromkeys(it["group"] for it in self.all_items if it["group"] is not None))

    @functools.cached_property
    def hash(self) -> str:
        """16 hex of sha256 over the rendered items and the scoring options (not the name, the
        data's location, nor the ``groups``/``limit`` selection)."""
        options = {k: getattr(self, k) for k in _SCORING_OPTIONS}
        if self.extra:  # a registered kind's own keys (none for the built-in kinds: their hashes stay)
            options["extra"] = self.extra
        if self.format != "raw":  # only then, so the hashes of raw tasks are as they always were
            options.update(format=self.format, system_prompt=self.system_prompt)
        h = hashlib.sha256(json.dumps(options, sort_keys=True, default=list).encode())
        for it in self.all_items:
            h.update(json.dumps(it, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def spec(self) -> dict:
        """The JSON-able spec (what a YAML file would hold), for provenance and Ray workers."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "data"}
        if isinstance(self.data, (str, dict)):
            out["data"] = self.data
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def extract_answer(self, completion: str) -> str:
        """generation: the answer a completion gives (cut at ``stop``; ``regex``'s first match)."""
        for s in self.stop:
            if s and s in completion:
                completion = completion[:completion.index(s)]
        completion = completion.strip()
        if self.scoring == "regex":
            m = re.search(self.regex, completion)
            completion = (m.group(1) if m.groups() else m.group(0)) if m else ""
        return completion.lower() if self.ignore_case else completion


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Task)}


def task_from_dict(spec: dict, base_dir: Path | None = None, **overrides) -> Task:
    spec = {**spec, **overrides}
    if "name" not in spec or "kind" not in spec:
        raise InvalidInputError(f"a task spec needs 'name' and 'kind' (one of {tuple(KINDS)}); got {sorted(spec)}")
    kind = task_kind(spec["kind"])
    own = set(kind.templates) | set(kind.options)   # a registered kind's keys that are no Task field
    unknown = set(spec) - _fields() - own
    if unknown:
        allowed = sorted((_fields() - {"base_dir", "extra"}) | own)
        raise InvalidInputError(f"unknown task spec key(s) {sorted(unknown)}; allowed: {allowed}")
    extra = {k: spec.pop(k) for k in list(spec) if k in own and k not in _fields()}
    if extra:
        spec["extra"] = extra
    if base_dir is not None and not spec.get("base_dir"):
        spec["base_dir"] = str(base_dir)
    return Task(**spec)


def _from_yaml(path: Path, **overrides) -> Task:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise DataError(f"{path} must hold a mapping of task spec keys")
    spec.setdefault("name", path.stem)
    return task_from_dict(spec, base_dir=path.parent, **overrides)


def _infer_spec(path: Path, encoding: str | None = None) -> dict:
    """A spec for a bare data file from its columns (a user's own minimal pairs, corpus, ...)."""
    rows = read_file_rows(path, encoding) if path.exists() else []
    if path.exists() and not rows:
        raise DataError(f"task data file {str(path)!r} has no rows")
    cols = set(rows[0]) if rows else set()
    if {"sentence_good", "sentence_bad"} <= cols:
        return dict(kind="minimal_pairs", good="{sentence_good}", bad="{sentence_bad}")
    if {"good", "bad"} <= cols:
        return dict(kind="minimal_pairs", good="{good}", bad="{bad}")
    if {"choices", "label"} <= cols:
        return dict(kind="multiple_choice", context="{question}" if "question" in cols else "{context}",
                    choices="{choices}", target="{label}")
    if {"prompt", "answer"} <= cols:
        return dict(kind="generation", prompt="{prompt}", target="{answer}")
    if "text" in cols:
        return dict(kind="perplexity", text="{text}")
    raise InvalidInputError(f"cannot tell what task {path} is from its columns {sorted(cols)}: pass kind= and "
                            "the templates, e.g. load_task(path, kind='minimal_pairs', good='{a}', bad='{b}')")


def builtin_tasks() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.yaml"))}


def load_task(task, **overrides) -> Task:
    """A :class:`Task` from a built-in name (``"blimp"``, ``"blimp:adjunct_island,wh_island"`` for
    chosen paradigms), a YAML spec path, a data file (``.jsonl``/``.csv``; kind inferred from the
    columns unless given), a dict spec, or a Task. ``overrides`` replace spec keys.

    >>> import workbench as wb
    >>> wb.load_task("arithmetic").kind
    'generation'
    """
    if isinstance(task, Task):
        return dataclasses.replace(task, **overrides) if overrides else task
    if isinstance(task, dict):
        return task_from_dict(task, **overrides)
    if not isinstance(task, (str, Path)):
        raise InvalidInputError(f"a task is a name, a path, a dict spec or a Task; got {type(task).__name__}")
    text = str(task)
    builtin = builtin_tasks()
    base, _, groups = text.partition(":")
    if base in builtin:
        extra = {"groups": tuple(g for g in groups.split(",") if g), "name": text} if groups else {}
        return _from_yaml(builtin[base], **{**extra, **overrides})
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise DataError(f"task spec {text!r} does not exist")
        return _from_yaml(path, **overrides)
    if path.exists():
        spec = {"name": path.name.split(".")[0], "data": str(path.resolve())}
        if "kind" not in overrides:
            spec.update(_infer_spec(path, overrides.get("encoding")))
        return task_from_dict(spec, **overrides)
    data_suffixes = (".jsonl", ".json", ".csv", ".tsv")
    if path.name.lower().removesuffix(".gz").endswith(data_suffixes) or "/" in text or "\\" in text:
        # a file name: say the file is missing (not that the name is an unknown task)
        raise DataError(f"task data file {text!r} does not exist (resolved to {path.resolve()}): check the "
                        "path; a task is a built-in name, a YAML spec or a .jsonl/.json/.csv/.tsv data file")
    raise UnknownTaskError(f"unknown task {text!r}: use a built-in name ({', '.join(builtin)}), "
                           "a YAML spec, or a .jsonl/.csv file")


def list_tasks() -> pd.DataFrame:
    """DataFrame of the built-in tasks: name, kind, description."""
    rows = []
    for name, path in builtin_tasks().items():
        t = _from_yaml(path)
        rows.append({"name": name, "kind": t.kind, "description": t.description.strip().split("\n")[0]})
    return pd.DataFrame(rows, columns=["name", "kind", "description"])
