"""Input checks at the door, in one place.

Every public function states what it accepts with :func:`checked` (a decorator naming a rule per
parameter) and calls the model-dependent checks (:func:`check_model`, :func:`check_context`,
:func:`check_token_id`, ...) before any work. So a bad value is refused with a
:class:`~workbench.errors.WorkbenchError` that names the parameter, what it got and what to
give instead, never with a dependency's traceback halfway through a run, and never silently.

Rules are strict on purpose: a safety switch (``trust_remote_code``, ``allow_pickle``) given as
the string ``"no"`` must not read as true, and ``max_new_tokens=2.5`` must not be rounded.

>>> from workbench.validate import checked, Int, Real, BOOL
>>> @checked(n=Int(min=1), p=Real(gt=0, le=1), flag=BOOL)
... def f(n, p=0.5, flag=False):
...     return n, p, flag
>>> f(3)
(3, 0.5, False)
>>> f(0)
Traceback (most recent call last):
...
workbench.errors.InvalidInputError: n must be at least 1, got 0
>>> f(2, flag="no")
Traceback (most recent call last):
...
workbench.errors.InvalidTypeError: flag must be True or False (a bool), got the str 'no'; strings such as 'no' or 'false' are not read as booleans: pass True or False
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers

from workbench.errors import ContextWindowError, InvalidInputError, InvalidTypeError


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- scalar checkers: (name, value) -> the value as a plain Python object -----------------------

def check_bool(name: str, value) -> bool:
    """``True``/``False`` (or a numpy bool). Strings, ints and None are refused, not coerced."""
    import numpy as np
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    hint = ("; strings such as 'no' or 'false' are not read as booleans: pass True or False"
            if isinstance(value, str) else "; pass True or False")
    raise InvalidTypeError(f"{name} must be True or False (a bool), got the {type(value).__name__} "
                           f"{_show(value)}{hint}")


def check_int(name: str, value, *, min: int | None = None, max: int | None = None) -> int:
    """An integer (Python or numpy; not a bool, not a float such as 2.5 or 2.0, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = " (write it without quotes)" if isinstance(value, str) else ""
        raise InvalidTypeError(f"{name} must be an int, got the {type(value).__name__} {_show(value)}{hint}")
    value = int(value)
    if min is not None and value < min:
        raise InvalidInputError(f"{name} must be at least {min}, got {value}")
    if max is not None and value > max:
        raise InvalidInputError(f"{name} must be at most {max}, got {value}")
    return value


def check_real(name: str, value, *, gt=None, ge=None, lt=None, le=None) -> float:
    """A finite real number (int or float, not a bool or string) within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be a number, got the {type(value).__name__} {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value}")
    for bound, ok, word in ((gt, lambda b: value > b, "greater than"), (ge, lambda b: value >= b, "at least"),
                            (lt, lambda b: value < b, "less than"), (le, lambda b: value <= b, "at most")):
        if bound is not None and not ok(bound):
            raise InvalidInputError(f"{name} must be {word} {bound}, got {value:g}")
    return value


def check_level(name: str, value) -> float:
    """A confidence level (or a share such as a test's alpha or power): a number strictly
    between 0 and 1. Every interval and test of the workbench takes ``level`` this way."""
    value = check_real(name, value)
    if not 0 < value < 1:
        raise InvalidInputError(f"{name} must be in (0, 1), e.g. 0.95 for a 95% interval; got {value:g}")
    return value


def check_choice(name: str, value, choices) -> object:
    """One of ``choices`` (compared with ``==``; unhashable values are refused the same way)."""
    if not any(value == c and type(value) is type(c) for c in choices):
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {_show(value)}")
    return value


def check_finite(name: str, tensor) -> None:
    """Every element of a tensor/array is finite (NaN or inf would poison every result)."""
    import torch
    t = torch.as_tensor(tensor)
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        if bad.any():
            raise InvalidInputError(f"{name} has {int(bad.sum())} NaN or infinite values out of {t.numel()}; "
                                    "check how it was computed (e.g. a mean over an empty set)")


# -- declarative rules for @checked ---------------------------------------------------------------

class Rule:
    """A check of one parameter: ``rule(name, value) -> value``."""

    def __init__(self, fn, text: str):
        self.fn, self.text = fn, text

    def __call__(self, name, value):
        return self.fn(name, value)

    def __repr__(self):
        return self.text


BOOL = Rule(check_bool, "bool")


LEVEL = Rule(check_level, "level in (0, 1)")


def Int(min: int | None = None, max: int | None = None) -> Rule:
    return Rule(lambda n, v: check_int(n, v, min=min, max=max), f"int[{min}, {max}]")


def Real(**bounds) -> Rule:
    return Rule(lambda n, v: check_real(n, v, **bounds), f"real{bounds}")


def OneOf(*choices) -> Rule:
    return Rule(lambda n, v: check_choice(n, v, choices), f"one of {choices}")


def Optional(rule: Rule) -> Rule:
    """``None`` or what ``rule`` accepts."""
    return Rule(lambda n, v: None if v is None else rule(n, v), f"None or {rule}")


def checked(**rules: Rule):
    """Decorator: check (and normalise) the named parameters before the function runs.

    Defaults are checked too, so a rule and a default cannot disagree unnoticed. The wrapped
    function keeps its name, docstring and signature (``inspect.signature`` follows it)."""
    def wrap(fn):
        sig = inspect.signature(fn)
        unknown = set(rules) - set(sig.parameters)
        if unknown:  # a typo in a rule would silently check nothing
            raise TypeError(f"checked(): {fn.__name__} has no parameters {sorted(unknown)}")

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                raise InvalidTypeError(f"{fn.__name__}(): {e}") from None
            bound.apply_defaults()
            for name, rule in rules.items():
                bound.arguments[name] = rule(name, bound.arguments[name])
            return fn(*bound.args, **bound.kwargs)
        inner.rules = rules
        return inner
    return wrap


# -- model-dependent checks -----------------------------------------------------------------------

def check_pairs(requests, what: str = "loglikelihood") -> list[tuple[str, str]]:
    """A list of (context, continuation) string pairs, every continuation non-empty."""
    if isinstance(requests, tuple) and len(requests) == 2 and all(isinstance(x, str) for x in requests):
        raise InvalidInputError(f"{what} takes a list of (context, continuation) pairs; "
                                "wrap a single pair in a list: [(context, continuation)]")
    if isinstance(requests, (str, bytes)) or not hasattr(requests, "__iter__"):
        raise InvalidTypeError(f"{what} takes a list of (context, continuation) pairs of strings, got "
                               f"{type(requests).__name__}")
    reqs = []
    for i, r in enumerate(requests):
        if not (isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(x, str) for x in r)):
            raise InvalidInputError(f"request {i} must be a (context, continuation) pair of strings, got {r!r}")
        if not r[1]:
            raise InvalidInputError(f"request {i} has an empty continuation: there is nothing to score")
        check_unicode(f"{what}: request {i}'s context", r[0])
        check_unicode(f"{what}: request {i}'s continuation", r[1])
        reqs.append((r[0], r[1]))
    return reqs


def check_unicode(what: str, text: str) -> str:
    """A string a tokenizer can encode: no lone surrogate (``"\\udcff"``), which is not a
    character and which no UTF-8 tokenizer takes. They come from bytes that are not UTF-8 read
    with ``errors="surrogateescape"`` (``os.listdir``, ``sys.argv``, some CSV readers).

    >>> check_unicode("text 0", "caf\\udce9")
    Traceback (most recent call last):
    ...
    workbench.errors.InvalidInputError: text 0 has a lone surrogate '\\udce9' at character 3: it is not a character ...
    """
    if text.isascii():  # the common case, without encoding anything
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"{what} has a lone surrogate {text[e.start]!r} at character {e.start}: it is not a character and "
            "cannot be tokenised. It comes from bytes that are not UTF-8 decoded with errors='surrogateescape'; "
            "read the source with its real encoding (e.g. encoding='latin-1') or with errors='replace'") from None
    return text


def check_texts(texts, what: str, allow_empty: bool = False) -> list[str]:
    """A list (or other iterable, not a single string) of strings, none empty unless allowed."""
    if isinstance(texts, str):
        raise InvalidInputError(f"{what} takes a list of strings; wrap a single string in a list: [text]")
    try:
        texts = list(texts)
    except TypeError:
        raise InvalidTypeError(f"{what} takes a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(f"{what}: item {i} is {type(t).__name__}, not a string")
        if not allow_empty and not t.strip():
            raise InvalidInputError(f"{what}: item {i} is empty; remove it or give text to score")
        check_unicode(f"{what}: item {i}", t)
    return texts


# Models whose position table reserves slots for the padding index (RoBERTa counts positions
# from padding_idx + 1), so fewer tokens fit than max_position_embeddings says.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl")


def context_window(model) -> int | None:
    """Most tokens the model takes in one sequence, from its config (``max_position_embeddings``,
    ``n_positions`` or ``n_ctx``; RoBERTa-style models less their padding offset). ``None`` when
    the config does not say. Sliding-window attention (Gemma 3, Mistral) limits what a token
    attends to, not how long the input may be, so it does not count here."""
    hf = getattr(model, "hf", model)
    return config_window(hf.config if hf is not None else model.config)  # other backends: the config they read


def config_window(cfg) -> int | None:
    """The context window a transformers config declares (see :func:`context_window`)."""
    cfg = getattr(cfg, "text_config", None) or cfg
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            if getattr(cfg, "model_type", "") in _OFFSET_POSITIONS:
                pad = getattr(cfg, "pad_token_id", None)
                v -= (pad if isinstance(pad, int) else 1) + 1
            return v
    return None


def check_context(model, n_tokens: int, what: str, hint: str = "") -> None:
    """Refuse (before running) a sequence of ``n_tokens`` longer than the model's window.

    ``what`` names the input ("text 3 of embed"); ``hint`` says what to do instead."""
    window = context_window(model)
    if window is not None and n_tokens > window:
        raise ContextWindowError(
            f"{what} is {n_tokens} tokens, longer than {model.name}'s context window of {window} tokens "
            f"(the most positions it has). {hint or 'Shorten or split the input.'}")


def check_token_id(model, token_id, name: str = "token id") -> int:
    """A token id that has a row in the model's output (or input) embeddings."""
    tid = check_int(name, token_id)
    hf = model.hf
    if hf is None:  # another backend (llama.cpp): the vocabulary its config declares
        cfg = model.config
        n = int((getattr(cfg, "text_config", None) or cfg).vocab_size)
    else:
        emb = hf.get_output_embeddings() if hf.get_output_embeddings() is not None else hf.get_input_embeddings()
        n = int(emb.weight.shape[0])
    if not 0 <= tid < n:
        raise InvalidInputError(f"{name} {tid} is outside the vocabulary of {model.name} (ids 0..{n - 1}); "
                                "give a token string or an id the tokenizer produces")
    return tid


# -- loading options ------------------------------------------------------------------------------

DTYPES = ("float32", "float16", "bfloat16", "float64")


def check_dtype(dtype):
    """None (float32), "auto", a floating torch dtype or its name -> torch dtype or "auto"."""
    import torch
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype == "auto":
        return dtype
    name = str(dtype).replace("torch.", "") if isinstance(dtype, (str, torch.dtype)) else None
    if name in DTYPES:
        return getattr(torch, name)
    raise InvalidInputError(f"dtype must be one of {DTYPES}, 'auto' or a torch.dtype of those, got {_show(dtype)}: "
                            "weights are loaded as floating point (quantised checkpoints such as GGUF are "
                            "de-quantised); for less memory use 'bfloat16' or 'float16'")


def check_device(device) -> str:
    """None (cpu) or a device this machine has: "cpu", "cuda", "cuda:1", "mps", a torch.device."""
    import torch
    if device is None:
        return "cpu"
    if not isinstance(device, (str, torch.device)):
        raise InvalidTypeError(f"device must be a string such as 'cpu' or 'cuda:0' (or a torch.device), "
                               f"got the {type(device).__name__} {_show(device)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InvalidInputError(f"device {device!r} is not a device name; use 'cpu', 'cuda', 'cuda:0', "
                                "'mps', ...") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device={device!r} but CUDA is not available here (torch "
                                    f"{torch.__version__}, torch.cuda.is_available() is False): use "
                                    "device='cpu', or install a CUDA build of torch on a machine with a GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInputError(f"device={device!r} but this machine has {torch.cuda.device_count()} "
                                    "CUDA device(s); use an index below that")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InvalidInputError(f"device={device!r} but Apple's MPS backend is not available here; use 'cpu'")
    return str(device) if isinstance(device, str) else str(dev)


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def check_device_map(device_map):
    """None, one of accelerate's strategies (``"auto"``, ``"balanced"``, ...), a device this
    machine has, or a dict ``{module name: device}`` whose devices are a GPU index, ``"cpu"``,
    ``"disk"`` or a device this machine has. Checked here so that ``"nonsense"`` or
    ``{"": "tpu"}`` is refused before any weight is read, with what to pass instead.

    >>> check_device_map({"": "cpu"})
    {'': 'cpu'}
    >>> check_device_map("tpu")
    Traceback (most recent call last):
    ...
    workbench.errors.InvalidInputError: device_map='tpu' is neither a placement strategy ('auto', 'balanced', ...
    """
    import torch
    if device_map is None:
        return None
    if isinstance(device_map, str) and device_map in DEVICE_MAP_STRATEGIES:
        return device_map
    if isinstance(device_map, (str, torch.device)):
        try:
            return check_device(device_map)
        except InvalidInputError as e:
            raise InvalidInputError(
                f"device_map={_show(device_map)} is neither a placement strategy "
                f"({', '.join(map(repr, DEVICE_MAP_STRATEGIES))}) nor a device this machine has ({e}). Pass "
                "device_map='auto' (with max_memory=, offload_folder= for models larger than memory), a device "
                "such as 'cpu', or a dict {module name: device}") from None
    if not isinstance(device_map, dict):
        raise InvalidTypeError(f"device_map must be None, a strategy such as 'auto', a device or a dict "
                               f"{{module name: device}}, got the {type(device_map).__name__} {_show(device_map)}")
    if not device_map:
        raise InvalidInputError("device_map is an empty dict: map module names to devices, e.g. {'': 'cpu'}, "
                                "or pass device_map='auto'")
    for module, where in device_map.items():
        if not isinstance(module, str):
            raise InvalidTypeError(f"device_map's keys are module names (str, '' for the whole model), got "
                                   f"{_show(module)}")
        label = f"device_map[{module!r}]"
        if isinstance(where, bool) or not isinstance(where, (int, str, torch.device)):
            raise InvalidTypeError(f"{label} must be a GPU index, 'cpu', 'disk' or a device name, got the "
                                   f"{type(where).__name__} {_show(where)}")
        if isinstance(where, int):
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if not 0 <= where < n:
                raise InvalidInputError(f"{label}={where} names GPU {where}, but this machine has {n} CUDA "
                                        "device(s): use 'cpu' or an index below that")
        elif not (isinstance(where, str) and where == "disk"):
            try:
                check_device(where)
            except InvalidInputError as e:
                raise InvalidInputError(f"{label}={_show(where)}: {e}") from None
    return device_map
