"""Model loading with provenance: embedded aliases, hub ids, local folders and GGUF files."""
from workbench.models.loading import load_model
from workbench.models.memory import estimate_memory
from workbench.models.model import Model
from workbench.models.registry import list_models

__all__ = ["Model", "estimate_memory", "list_models", "load_model"]
