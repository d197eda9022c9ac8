"""Errors that say what was wrong and what to do about it.

Every error the workbench raises on bad input is a :class:`WorkbenchError` (and also a
``ValueError``/``FileNotFoundError``/... where that is the natural Python category), so callers
can catch one type, and notebooks show a message rather than a deep traceback.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: the message says what was wrong and what to do."""


class UnknownModelError(WorkbenchError, KeyError):
    def __str__(self):  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(WorkbenchError, FileNotFoundError):
    pass


class CorruptModelError(WorkbenchError, ValueError):
    pass


class OfflineError(WorkbenchError, ConnectionError):
    pass


class UnsafeWeightsError(WorkbenchError, ValueError):
    pass


class TokenizerMismatchError(WorkbenchError, ValueError):
    pass


class WrongModelKindError(WorkbenchError, TypeError):
    """A method was asked of a model that cannot do it (e.g. PLL of a causal LM)."""


class InvalidInputError(WorkbenchError, ValueError):
    pass


class InvalidTypeError(InvalidInputError, TypeError):
    """A parameter of the wrong type (``"no"`` for a bool, ``2.5`` or ``"5"`` for an int). Also an
    :class:`InvalidInputError`, so code that caught bad input before still catches it."""


class ContextWindowError(InvalidInputError):
    """An input longer than the model's context window, refused before running."""


class DoesNotFitError(WorkbenchError, MemoryError):
    """Refused before running: the estimate says it would not fit. The message has the estimate."""


class UnsupportedSiteError(WorkbenchError, KeyError):
    def __str__(self):
        return str(self.args[0]) if self.args else ""


class DataError(WorkbenchError, ValueError):
    """Malformed data set rows or files."""


class TruncationWarning(UserWarning):
    """Inputs were cut to fit the model's window (the rule is documented where it applies, and
    every cut is recorded in the result, e.g. ``truncated_tokens``)."""


class StoreError(WorkbenchError, OSError):
    """A results store that cannot be opened or written (not SQLite, a folder, read-only, full)."""


class CacheWarning(UserWarning):
    """The score cache could not be used; scoring went on without it. Shown once per cause."""


class CacheError(WorkbenchError, OSError):
    """A cache folder the workbench must write to (the de-quantised GGUF cache) is not writable."""


class BackendCapabilityError(WorkbenchError, TypeError):
    """The model's backend cannot answer this kind of request (e.g. inspection on a llama.cpp
    or server backend); the message names a backend that can."""


class BackendUnavailableError(WorkbenchError, ImportError):
    """A backend's optional dependency is not installed (e.g. ``llama-cpp-python`` for
    ``backend="llama.cpp"``); the message gives the install command."""


class ServerError(WorkbenchError, ConnectionError):
    """A model server (``backend="openai"``) could not be reached, timed out after its retries, or
    answered with an error or without what was asked (e.g. no prompt log-probs)."""
