"""Paths as a published record should hold them: relative to a named root, never the absolute
paths of the machine that ran the work.

An audit card is read on other machines, often years later. ``/home/alice/data/crows_pairs`` says
nothing there and leaks the author's machine layout; ``<data>/crows_pairs`` (with the data set's
content hash beside it, which the probes record) says which data was used. The roots, in the
order they are tried (the most specific first):

- ``<data>``: the public data sets (``WORKBENCH_SHARED_DATA``, else a ``shared/data`` folder
  beside the checkout);
- ``<cache>``: the workbench's caches (``WORKBENCH_CACHE``, else ``~/.cache/workbench``);
- ``<site-packages>``: installed packages (embedded models live there);
- ``<workbench>``: this checkout (notebooks, audits);
- ``<tmp>``: the temporary folder;
- ``~``: the home folder.

An absolute path under none of them keeps only its last two parts behind ``<abs>/``.

>>> import os
>>> portable_path(os.path.expanduser("~/notes/x.txt"))
'~/notes/x.txt'
>>> portable_path("relative/stays.txt")
'relative/stays.txt'
>>> portable_path("/nowhere/known/deep/file.json")
'<abs>/deep/file.json'
"""
from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _roots() -> list[tuple[str, str]]:
    """(absolute prefix, name) pairs, longest prefix first so the most specific root wins."""
    cache = os.environ.get("WORKBENCH_CACHE") or str(Path.home() / ".cache" / "workbench")
    data = os.environ.get("WORKBENCH_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    found = [(data, "<data>"), (cache, "<cache>"), (tempfile.gettempdir(), "<tmp>"),
             (str(ROOT), "<workbench>"), (str(Path.home()), "~")]
    paths = sysconfig.get_paths()
    packages = {paths.get("purelib"), paths.get("platlib")}
    try:
        packages |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except AttributeError:  # some embedded interpreters have no site.getsitepackages
        pass
    found += [(p, "<site-packages>") for p in packages if p]
    found += [(sys.prefix, "<python>")]
    out = []
    for prefix, name in found:
        for variant in {prefix, os.path.realpath(prefix)}:
            if variant and variant != os.sep:
                out.append((variant.rstrip(os.sep), name))
    return sorted(out, key=lambda pair: -len(pair[0]))


def portable_path(path, roots: list | None = None) -> str:
    """``path`` relative to a named root (see the module docstring); relative paths unchanged.
    ``roots`` (from ``_roots()``) lets a caller that converts many paths look them up once."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    for prefix, name in roots or _roots():
        if text == prefix or text.startswith(prefix + os.sep):
            rest = text[len(prefix):].lstrip(os.sep)
            return f"{name}/{rest}" if rest else name
    parts = Path(text).parts[1:]
    return "<abs>/" + "/".join(parts[-2:]) if parts else "<abs>"


_ABSOLUTE = re.compile(r"(?<![\w.<>~:/-])(/(?:[^\s/'\"<>|:,;()\[\]{}]+/)*[^\s/'\"<>|:,;()\[\]{}]+)")


def portable_text(text: str, roots: list | None = None) -> str:
    """Every absolute path inside a string (a message, a repr) made portable."""
    if "/" not in text:
        return text
    roots = roots or _roots()
    return _ABSOLUTE.sub(lambda m: portable_path(m.group(1), roots) if _looks_like_path(m.group(1), roots)
                         else m.group(1), text)


def _looks_like_path(candidate: str, roots: list) -> bool:
    # "/" alone, "/s" units and fractions like "1/2" are not paths: a path has two parts or
    # starts at a known root
    if candidate.count("/") >= 2:
        return True
    return any(candidate == p or candidate.startswith(p + os.sep) for p, _ in roots)


def scrub(value, roots: list | None = None):
    """A JSON-able structure with every absolute path string made portable (recursively); the
    roots are looked up once for the whole structure."""
    roots = roots or _roots()
    if isinstance(value, dict):
        return {k: scrub(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, roots) for v in value]
    if isinstance(value, str):
        return portable_text(value, roots)
    return value
