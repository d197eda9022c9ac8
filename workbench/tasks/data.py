"""Reading a task's rows (local files, in-memory tables, ``datasets`` data sets) and rendering
them through the task's templates into items.

Kept apart from :mod:`workbench.tasks.spec` so the spec (what a task *is*) and the I/O (where
its rows come from) can be read separately.
"""
from __future__ import annotations

import os
import string
from pathlib import Path

from workbench.datafiles import read_records
from workbench.errors import DataError, InvalidInputError


class FieldsOnlyFormatter(string.Formatter):
    """``str.format`` limited to plain field names (``{question}``, ``{choices:>5}``): no
    attributes (``{x.__class__}``), no indexing (``{x[0]}``), no conversions (``{x!r}``), no
    positional fields, so a task file cannot reach into Python objects through its templates."""

    def parse(self, template):
        for literal, name, spec, conversion in super().parse(template):
            if name is not None and (not name.isidentifier() or conversion is not None):
                bad = "{" + name + ("!" + conversion if conversion else "") + "}"
                raise DataError(f"template {template!r}: field {bad} is not allowed; templates take plain "
                                "field names only, such as {question} (no attributes, indexing, !conversions "
                                "or positional fields)")
            yield literal, name, spec, conversion


_FORMATTER = FieldsOnlyFormatter()


def shared_data_dir() -> Path | None:
    """Where the project's public data sets live: ``$WORKBENCH_SHARED_DATA``, else
    ``../shared/data`` next to the current folder or next to the repository the package is in."""
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data",
                   Path(__file__).resolve().parents[3] / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), None)


def resolve_path(source: str, base_dir: Path | None) -> Path:
    """A data path from a spec: ``shared:<rel>`` (the public data folder), absolute, relative to
    the spec's folder, or relative to the current folder."""
    if source.startswith("shared:"):
        root = shared_data_dir()
        if root is None:
            raise DataError(f"task data {source!r} lives in the shared data folder, which was not found: "
                            "set WORKBENCH_SHARED_DATA to the folder that holds e.g. blimp/")
        path = root / source[len("shared:"):]
    else:
        path = Path(os.path.expanduser(source))
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
    if not path.exists():
        raise DataError(f"task data file {str(path)!r} does not exist: check the path "
                        "(relative paths in a YAML spec are relative to the YAML file)")
    return path


def read_file_rows(path: Path, encoding: str | None = None) -> list[dict]:
    """Rows of a ``.jsonl``/``.json``/``.csv``/``.tsv`` file (each optionally ``.gz``), decoded
    with ``encoding`` (UTF-8 by default; see :mod:`workbench.datafiles`)."""
    return read_records(path, encoding, what="a task")


def read_rows(data, base_dir: Path | None = None, encoding: str | None = None) -> list[dict]:
    """Rows from any supported source: a path (see :func:`resolve_path`), a list of dicts, a pandas
    DataFrame, a ``datasets.Dataset``, or ``{"dataset": name_or_dir, "config": ..., "split": ...}``."""
    if data is None:
        raise InvalidInputError("a task needs data: a file path, a list of rows, a DataFrame, "
                                "a datasets.Dataset or {'dataset': ..., 'split': ...}")
    if isinstance(data, (str, os.PathLike)):
        return read_file_rows(resolve_path(str(data), base_dir), encoding)
    if isinstance(data, dict):
        return _read_hf_dataset(data, base_dir)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        return data.to_dict(orient="records")
    if type(data).__name__ in ("Dataset", "IterableDataset") or hasattr(data, "features"):
        return [dict(row) for row in data]
    if isinstance(data, (list, tuple)):
        bad = [i for i, r in enumerate(data) if not isinstance(r, dict)]
        if bad:
            raise DataError(f"task rows must be dicts; rows {bad[:5]} are not")
        return [dict(r) for r in data]
    raise InvalidInputError(f"cannot read task data of type {type(data).__name__}")


def _read_hf_dataset(spec: dict, base_dir: Path | None) -> list[dict]:
    import datasets

    unknown = set(spec) - {"dataset", "config", "split", "data_files"}
    if "dataset" not in spec or unknown:
        raise InvalidInputError(f"a datasets source is {{'dataset': id_or_dir, 'config': ..., 'split': ..., "
                                f"'data_files': ...}}; got keys {sorted(spec)}")
    name, split = spec["dataset"], spec.get("split")
    local = Path(os.path.expanduser(name))
    if not local.is_absolute() and base_dir is not None and (base_dir / local).exists():
        local = base_dir / local
    if local.is_dir() and any((local / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        ds = datasets.load_from_disk(str(local))  # saved with Dataset.save_to_disk
    else:
        try:
            ds = datasets.load_dataset(name, spec.get("config"), split=split, data_files=spec.get("data_files"))
        except Exception as e:  # offline, unknown id, missing config: say what to do
            raise DataError(f"could not load the datasets data set {name!r} (config={spec.get('config')!r}, "
                            f"split={split!r}): {e}. Offline, pass a local file or a folder saved with "
                            "Dataset.save_to_disk.") from e
    if hasattr(ds, "keys") and not hasattr(ds, "features"):  # a DatasetDict: pick the split
        if split is None:
            raise InvalidInputError(f"data set {name!r} has splits {list(ds.keys())}: say which with 'split'")
        ds = ds[split]
    return [dict(row) for row in ds]


def template_fields(template: str) -> list[str]:
    """The field names of a template; a DataError for anything but plain names."""
    try:
        return [f for _, f, _, _ in _FORMATTER.parse(template) if f is not None]
    except ValueError as e:  # unbalanced braces
        if isinstance(e, DataError):
            raise
        raise DataError(f"template {template!r} is not a valid format string ({e}); write fields as "
                        "{name} and literal braces as {{ and }}") from None


def render(template, row: dict, where: str):
    """Fill ``template`` (``str.format`` syntax, e.g. ``"Q: {question}\\nA:"``) from ``row``.
    A template that is exactly one field (``"{choices}"``) returns the raw value (lists stay lists)."""
    if not isinstance(template, str):
        return template
    fields = template_fields(template)
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{where}: template {template!r} needs field(s) {missing}, but the row has "
                        f"{sorted(row)}; fix the template or the data")
    if len(fields) == 1 and template == "{" + fields[0] + "}" and fields[0] in row:
        return row[fields[0]]
    return _FORMATTER.vformat(template, (), row)
