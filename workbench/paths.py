"""Where the workbench keeps its caches. ``WORKBENCH_CACHE`` overrides the default
(``~/.cache/workbench``); tests point it at a temporary folder when they need isolation.

:func:`cache_dir` never raises: a folder that cannot be created (read-only disk, a path under a
regular file, no permission) is returned anyway, and each user of it (the score cache, the GGUF
cache, the file-hash memo) decides what to do when it cannot write there. A cache is an
optimisation, so failing to create its folder must not stop scoring.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench").expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:  # reported by the user of the folder, which knows whether it matters
        pass
    return root


def describe_os_error(err: BaseException, folder: Path) -> tuple[str, str]:
    """``(cause, fix)`` in plain words for a failure to write under ``folder``: "read-only",
    "disk is full", ... The cause is found by trying to create a small file there, because
    SQLite reports most of these as "unable to open database file"."""
    import errno
    import sqlite3
    import tempfile

    text = str(err).lower()
    if isinstance(err, sqlite3.DatabaseError):
        if "full" in text:
            return "disk is full", f"free space on the disk holding {folder}"
        if "not a database" in text or "malformed" in text:
            return "not a SQLite file", "delete or move the file (it is only a cache)"
        if "locked" in text or "busy" in text:
            return "locked by another process", "wait for the other process or use another folder"
    code = getattr(err, "errno", None)
    if code is None:  # ask the file system what is wrong with the folder
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.is_dir():
            try:
                tempfile.TemporaryFile(dir=probe).close()
            except OSError as e:
                code = e.errno
        elif probe.exists():
            code = errno.ENOTDIR
    causes = {errno.EROFS: "read-only (a read-only file system)", errno.EACCES: "read-only (no write permission)",
              errno.EPERM: "read-only (writing is not permitted)", errno.ENOSPC: "disk is full",
              errno.EDQUOT: "disk is full (quota exceeded)", errno.ENOTDIR: "not a folder (a path under a file)",
              errno.EEXIST: "not a folder (a file is in the way)", errno.EIO: "failing with I/O errors"}
    if code in causes:
        cause = causes[code]
    elif "readonly" in text or "read-only" in text:
        cause = "read-only"
    else:
        cause = "unusable"
    if cause in ("unusable", causes[errno.EIO]):
        # SQLite reports a disk with a few KiB left as a plain "disk I/O error" (its shared-memory
        # file cannot grow), and an empty file can still be made there: ask for the free space
        import shutil
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            free = None
        if free is not None and free < 1 << 20:
            cause = f"disk is full (only {free // 1024} KiB free)"
    fix = {"disk is full": f"free space on the disk holding {folder}",
           "read-only": f"make {folder} writable",
           "not a folder": f"remove the file in the way of {folder}"}.get(cause.split(" (")[0], "use a writable folder")
    return cause, fix
