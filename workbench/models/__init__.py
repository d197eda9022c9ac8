"""Model loading with provenance: embedded aliases, hub ids, local folders and GGUF files."""
from workbench.models.model import Model

__all__ = ["Model"]
