"""What a checkpoint folder says about itself, read without building the model: the Auto class of
its kind, its weight files, its licence, its display name, whether it needs its own code.

It sits below :mod:`workbench.models.folder` and :mod:`workbench.vision.loading`, which both use
it: ``folder`` hands vision-language models on to ``vision.loading``, so neither can hold the
other's helpers.

>>> from workbench.models.checkpoint import auto_class
>>> auto_class("causal").__name__
'AutoModelForCausalLM'
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from workbench.errors import CorruptModelError, ModelNotFoundError, UnsafeWeightsError
from workbench.models.checks import check_safetensors


def auto_class(kind: str):
    """The transformers Auto class that builds a model of ``kind`` (one of ``KINDS``)."""
    import transformers as T
    return {"causal": T.AutoModelForCausalLM, "masked": T.AutoModelForMaskedLM, "encoder": T.AutoModel,
            "vision-language": T.AutoModelForImageTextToText}[kind]

def weight_files_in(folder: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """The weight files transformers will read from ``folder`` and whether they are safetensors."""
    safetensors = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if safetensors:
        for f in safetensors:
            check_safetensors(f)
        return safetensors, True
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if pickles:
        if not allow_pickle:
            raise UnsafeWeightsError(
                f"{folder} has only pickle weights ({', '.join(p.name for p in pickles)}), which can run "
                "arbitrary code when loaded. Convert them to safetensors, or pass allow_pickle=True if "
                "you trust the source (they are then loaded with torch.load(weights_only=True)).")
        return pickles, False
    raise ModelNotFoundError(f"no weight files (*.safetensors, pytorch_model*.bin, *.gguf) in {folder}")

def check_needs_own_code(folder: Path) -> None:
    """Refuse, before transformers does (with a message that says the folder is corrupt), a model
    whose config needs the Python code shipped with it: an ``auto_map`` for a ``model_type`` this
    transformers does not know. Unreadable or plain configs are left to transformers' reader."""
    import transformers as T
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    try:
        raw = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(raw, dict):
        return
    model_type, auto_map = raw.get("model_type"), raw.get("auto_map")
    if model_type in CONFIG_MAPPING_NAMES:
        return  # transformers' own class is used (an auto_map beside it is ignored without trust_remote_code)
    code = sorted({str(v).split(".")[0] + ".py" for v in (auto_map or {}).values() if isinstance(v, str)})
    if auto_map:
        raise UnsafeWeightsError(
            f"{folder} needs its own Python code to load: its config.json names model_type {model_type!r}, which "
            f"transformers {T.__version__} does not have, and an auto_map to the code shipped with it "
            f"({', '.join(code) or 'auto_map'}). Pass trust_remote_code=True if you trust its source (that runs "
            "those files in this process); nothing was run.")
    raise CorruptModelError(
        f"{folder}'s config.json names model_type {model_type!r}, which transformers {T.__version__} does not "
        "know, and ships no code for it (no auto_map): upgrade transformers (pip install -U transformers) if "
        "the model is newer than this version, or check that config.json is the model's own.")

def licence_from_card(folder: Path) -> str:
    """The ``license:`` field of the model card's YAML front matter, else 'unknown'."""
    card = Path(folder) / "README.md"
    if card.is_file():
        text = card.read_text(errors="replace")
        if text.startswith("---"):
            front = text.split("---", 2)[1]
            m = re.search(r"^licen[cs]e:\s*(.+)$", front, flags=re.M)
            if m:
                return m.group(1).strip().strip("'\"")
    return "unknown (no licence in the model card: check the source)"

def display_name(folder: Path, config) -> str:
    """The name a model loaded from ``folder`` shows when none is given: the folder's name."""
    return Path(folder).name
