"""What a model's artifact declares about it, read offline, each statement with its source.

Sources, in the order they are read: the model card (``README.md``: YAML front matter and
sections), the GGUF header (``general.*`` and the architecture's keys, read with the ``gguf``
package when the file was de-quantised), ``config.json``, the tokenizer and chat template,
``generation_config.json``, licence files, and for embedded models the metadata of the Python
packages that ship the weights and the workbench registry. Nothing is fetched: what the artifact
does not carry is reported as not disclosed, never looked up.

Every statement becomes one row ``(field, value, source)``; a field may have several rows (the
licence in the card, the header and a licence file), which is what lets the indicators find a
contradiction between two sources.
"""
from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

import yaml

from workbench.models.fingerprint import sha256_file
from workbench.models.gguf_cache import MARKER, gguf_info
from workbench.models.registry import _EXTRA_INSTALL, EMBEDDED
from workbench.provenance_audit.licences import spdx_from_file, spdx_id

LICENCE_FILES = re.compile(r"^(licen[cs]e|copying|notice|.*terms.*)(\.[a-z]+)?$", re.I)
# card sections -> field, matched on the heading's words (the Hugging Face card template's headings)
SECTIONS = [("intended_use", r"intended use|^uses$|direct use|use cases"),
            ("limitations", r"limitation|bias, risks|risks"),
            ("training_data_description", r"training data|^data$|pre-?training data"),
            ("evaluation_description", r"^evaluation|results|benchmark")]
# YAML keys of the front matter -> field (the hub's documented keys, then common free-form ones)
CARD_KEYS = {"license": "licence", "licence": "licence", "base_model": "base_models", "datasets": "training_datasets",
             "language": "languages", "model_name": "name", "name": "name", "organization": "organisation",
             "developer": "organisation", "developers": "organisation", "version": "version",
             "architecture": "architecture", "model_type": "architecture", "parameters": "parameters",
             "params": "parameters", "model_size": "parameters", "context_length": "context_length",
             "vocab_size": "vocab_size", "quantization": "quantisation", "quantisation": "quantisation"}


def _row(field, value, source):
    return {"field": field, "value": value, "source": source}


def _as_list(value) -> list:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def sha256_of(path: Path) -> str:
    return sha256_file(path)


# --- the model card -----------------------------------------------------------------------------
def parse_card(text: str) -> tuple[dict, dict]:
    """(front matter as a dict, {heading: section text}) of a model card's markdown."""
    front, body = {}, text
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            try:
                front = yaml.safe_load(parts[1]) or {}
            except yaml.YAMLError:
                front = {}
            body = parts[2]
    sections, head, lines = {}, None, []
    for line in body.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            if head is not None:
                sections[head] = "\n".join(lines).strip()
            head, lines = m.group(1).strip(), []
        elif head is not None:
            lines.append(line)
    if head is not None:
        sections[head] = "\n".join(lines).strip()
    return (front if isinstance(front, dict) else {}), sections


def model_index_results(front: dict) -> list[dict]:
    """The declared evaluation results of a card's ``model-index``: task, dataset, metric, value,
    and the settings the card states (shots, normalisation) where it states them."""
    def dicts(value) -> list[dict]:  # a hand-written card may put a string or a dict where a list goes
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    def part(value) -> dict:
        return value if isinstance(value, dict) else {}

    out = []
    for entry in dicts(front.get("model-index")):
        for res in dicts(entry.get("results")):
            task, data = part(res.get("task")), part(res.get("dataset"))
            args = part(data.get("args"))
            for m in dicts(res.get("metrics")):
                if m.get("value") is None:
                    continue
                margs = part(m.get("args"))
                shots = margs.get("num_few_shot", args.get("num_few_shot"))
                out.append({"task": str(data.get("name") or data.get("type") or task.get("type") or ""),
                            "dataset": str(data.get("type") or data.get("name") or ""),
                            "metric": str(m.get("type") or m.get("name") or ""), "value": m["value"],
                            "shots": shots, "normalisation": margs.get("normalization") or margs.get("normalisation"),
                            "prompt_format": margs.get("prompt_format"), "source": "model card (model-index)"})
    return out


def card_rows(folder: Path) -> tuple[list[dict], list[dict]]:
    card = folder / "README.md"
    if not card.is_file():
        return [], []
    front, sections = parse_card(card.read_text(errors="replace"))
    src = "model card (README.md front matter)"
    rows = []
    for key, field in CARD_KEYS.items():
        if key in front and front[key] not in (None, "", []):
            value = front[key]
            if field in ("base_models", "training_datasets", "languages"):
                value = _as_list(value)
            rows.append(_row(field, value, f"{src}: {key}"))
    for field, pattern in SECTIONS:
        for head, text in sections.items():
            if re.search(pattern, head.strip().lower()) and text:
                rows.append(_row(field, _clip(text), f"model card (README.md section '{head}')"))
                break
    return rows, model_index_results(front)


def _clip(text: str, n: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= n else text[:n - 1] + "…"


# --- the GGUF header ----------------------------------------------------------------------------
def gguf_rows(meta: dict) -> list[dict]:
    src = "GGUF header"
    g = lambda k: meta.get(k)  # noqa: E731
    rows = []
    for key, field in (("general.name", "name"), ("general.organization", "organisation"), ("general.version", "version"),
                       ("general.finetune", "finetune"), ("general.license", "licence"),
                       ("general.size_label", "parameters"), ("general.architecture", "architecture")):
        if g(key) not in (None, ""):
            rows.append(_row(field, g(key), f"{src} ({key})"))
    for kind, field in (("base_model", "base_models"), ("dataset", "training_datasets")):
        n = int(g(f"general.{kind}.count") or 0)
        names = [g(f"general.{kind}.{i}.name") or g(f"general.{kind}.{i}.repo_url") for i in range(n)]
        if names:
            rows.append(_row(field, [str(x) for x in names if x], f"{src} (general.{kind}.*)"))
    if g("general.languages"):
        rows.append(_row("languages", _as_list(g("general.languages")), f"{src} (general.languages)"))
    arch = g("general.architecture")
    for key, field in (("context_length", "context_length"), ("vocab_size", "vocab_size")):
        if arch and g(f"{arch}.{key}") is not None:
            rows.append(_row(field, int(g(f"{arch}.{key}")), f"{src} ({arch}.{key})"))
    if g("general.file_type") is not None:
        rows.append(_row("quantisation", gguf_file_type(g("general.file_type")), f"{src} (general.file_type)"))
    if g("tokenizer.chat_template"):
        rows.append(_row("chat_template", "present", f"{src} (tokenizer.chat_template)"))
    return rows


def gguf_file_type(code) -> str:
    """The name of a GGUF ``general.file_type`` (e.g. 3 -> 'Q4_1', 15 -> 'Q4_K_M')."""
    import gguf
    try:
        return gguf.LlamaFileType(int(code)).name.replace("MOSTLY_", "").replace("ALL_", "")
    except (ValueError, TypeError):
        return f"file type {code}"


def quantisation_bits(name) -> int | None:
    """Bits per weight of most tensors for a quantisation name ('Q4_K_M' -> 4, 'F16' -> 16)."""
    m = re.match(r"^(?:I?Q|F|BF)(\d+)", str(name or "").upper())
    if m:
        return int(m.group(1))
    return {"none": None}.get(str(name).lower())


# --- config, tokenizer, generation config, licence files ----------------------------------------
def config_label(model, folder: Path | None) -> str:
    """Where the model's config came from, as its rows' source names it."""
    if model.hf is None:
        return ("config given with tokenizer=" if not model.fingerprint.get("weights_sha256")
                else "config from the GGUF header")
    return "config.json" if folder is not None and (folder / "config.json").is_file() else "config (in memory)"


def config_rows(model, label: str = "config.json") -> list[dict]:
    """The config's declarations. Its ``vocab_size`` is by definition the input embedding's row
    count, and ``max_position_embeddings`` the window the model is run with: declarations that the
    indicators check against the weights where the weights can measure them."""
    cfg = model.config
    rows = []
    archs = getattr(cfg, "architectures", None)
    if archs:
        rows.append(_row("architecture", ", ".join(archs), f"{label} (architectures)"))
    text_cfg = getattr(cfg, "text_config", cfg)
    for attr, field in (("max_position_embeddings", "context_length"), ("n_positions", "context_length"),
                        ("vocab_size", "vocab_size")):
        v = getattr(text_cfg, attr, None)
        if isinstance(v, int):
            rows.append(_row(field, v, f"{label} ({attr})"))
    q = getattr(cfg, "quantization_config", None)
    if q:
        q = q if isinstance(q, dict) else q.to_dict()
        rows.append(_row("quantisation", f"{q.get('quant_method', '?')} {q.get('bits', '')}".strip(),
                         f"{label} (quantization_config)"))
    return rows


def tokenizer_rows(model) -> list[dict]:
    tok = model.tokenizer
    rows = [_row("tokenizer", f"{type(tok).__name__}, {len(tok)} tokens", "tokenizer files")]
    template = getattr(tok, "chat_template", None)
    if isinstance(template, str) and template:
        digest = hashlib.sha256(template.encode()).hexdigest()[:12]
        rows.append(_row("chat_template", f"present (sha256 {digest}…)", "tokenizer (chat_template)"))
    return rows


def generation_rows(folder: Path) -> list[dict]:
    path = folder / "generation_config.json"
    if not path.is_file():
        return []
    import json
    try:
        cfg = json.loads(path.read_text())
    except ValueError:
        return [_row("generation_config", "unreadable", "generation_config.json")]
    keep = {k: v for k, v in cfg.items() if k not in ("transformers_version", "_from_model_config")}
    return [_row("generation_config", ", ".join(f"{k}={v}" for k, v in sorted(keep.items())) or "(defaults)",
                 "generation_config.json")]


def licence_file_rows(files: list[Path], where: str) -> tuple[list[dict], list[dict]]:
    """Licence rows for each licence file, and the files themselves (name, path, sha256)."""
    rows, found = [], []
    for path in files:
        if not (path.is_file() and LICENCE_FILES.match(path.name)):
            continue
        key = spdx_from_file(path.read_text(errors="replace"))
        found.append({"name": path.name, "path": str(path), "sha256": sha256_of(path), "role": "licence file"})
        rows.append(_row("licence_file", path.name, f"{where}"))
        if key:
            rows.append(_row("licence", key, f"licence file {path.name} ({where})"))
    return rows, found


# --- embedded models: package metadata and the registry ----------------------------------------
def embedded_entry(model):
    source = str(model.source)
    if not source.startswith("embedded:"):
        return None
    return EMBEDDED.get(source.split(":", 1)[1].split(" ")[0])


def package_rows(entry) -> tuple[list[dict], list[dict]]:
    """Rows from the metadata of the packages that ship an embedded model, and their licence files."""
    dists = list(dict.fromkeys([p.dist for p in entry.parts] + [
        x.split("==")[0] for x in _EXTRA_INSTALL.get(entry.alias, "").split()]))
    rows, files = [], []
    for dist in dists:
        try:
            meta = metadata.metadata(dist)
        except metadata.PackageNotFoundError:
            continue
        src = f"package metadata ({dist} {meta.get('Version')})"
        rows.append(_row("package", f"{dist}=={meta.get('Version')}", src))
        if meta.get("Summary"):
            rows.append(_row("description", meta["Summary"], src))
        if meta.get("Author"):
            rows.append(_row("packaged_by", meta["Author"], src))
        licence = meta.get("License-Expression") or meta.get("License")
        if licence:
            rows.append(_row("licence", licence, f"{src}: License"))
        for c in meta.get_all("Classifier") or []:
            if c.startswith("License ::"):
                rows.append(_row("licence", c.split("::")[-1].strip(), f"{src}: classifier"))
        for url in meta.get_all("Project-URL") or []:
            rows.append(_row("homepage", url.split(",", 1)[-1].strip(), src))
        dist_files = [Path(str(f.locate())) for f in metadata.files(dist) or []]
        r, f = licence_file_rows(dist_files, src)
        rows += r
        files += f
    rows.append(_row("licence", entry.licence, "workbench registry"))
    rows.append(_row("description", entry.description, "workbench registry"))
    rows.append(_row("parameters", entry.params, "workbench registry"))
    return rows, files


def collect(model) -> tuple[list[dict], list[dict], list[dict], Path | None]:
    """(rows, declared evaluation results, files with their hashes, the folder read)."""
    folder = model.fingerprint.get("loaded_from")
    folder = Path(folder) if folder and Path(folder).is_dir() else None
    rows, evals, files = [], [], []
    if folder is not None:
        r, evals = card_rows(folder)
        rows += r
        if (folder / "README.md").is_file():
            files.append({"name": "README.md", "path": str(folder / "README.md"),
                          "sha256": sha256_of(folder / "README.md"), "role": "model card"})
        if (folder / MARKER).is_file():
            rows += gguf_rows(gguf_info(folder).get("gguf_metadata") or {})
    rows += config_rows(model, config_label(model, folder))
    rows += tokenizer_rows(model)
    if folder is not None:
        rows += generation_rows(folder)
        r, f = licence_file_rows(sorted(folder.iterdir()), f"folder {folder.name}")
        rows += r
        files += f
    entry = embedded_entry(model)
    if entry is not None:
        r, f = package_rows(entry)
        rows += r
        files += f
    for name, digest in (model.fingerprint.get("weight_files") or {}).items():
        files.append({"name": name, "path": None, "sha256": digest, "role": "weights"})
    rows = list({(r["field"], str(r["value"]), r["source"]): r for r in rows}.values())  # a URL given twice
    for r in rows:
        if r["field"] == "licence":
            r["spdx"] = spdx_id(r["value"])
    return rows, evals, files, folder
