"""The audit file: what an audit measures, on which models, how many items, as one small YAML file.

An audit is one reviewable file; ``workbench audit audit.yaml`` runs it, the report records it
verbatim, and ``workbench audit --from-card audit_card.json`` runs the same audit again. The
command line (``--models``, ``--probes``, ...) and :func:`workbench.audit` build the same
:class:`AuditSpec`; flags override what a file says. Everything is checked here, at the door,
before any model is loaded: unknown keys, probes, tasks and backends, duplicate models, 2 to 10
models, a reference that is not among them, a backend whose optional engine is missing.

>>> spec = parse_spec('''
... models: [smollm2-135m-instruct, smollm2-135m-instruct@llama.cpp]
... probes: [crows_pairs]
... limit: 20
... ''')
>>> [(m.label, m.spec, m.backend) for m in spec.models]
[('smollm2-135m-instruct', 'smollm2-135m-instruct', 'hf'), ('smollm2-135m-instruct@llama.cpp', 'smollm2-135m-instruct', 'llama.cpp')]
>>> [(u.kind, u.name, u.limit) for u in spec.units]
[('probe', 'crows_pairs', 20)]

A model is a string (``SPEC`` or ``SPEC@BACKEND``: anything ``wb.load_model`` takes) or a
mapping with ``spec``, ``backend``, ``name`` (its label in the card; default: the string as
given) and ``options`` (passed to ``wb.load_model``: a server's ``model_name``, a ``tokenizer``
folder, ``dtype``, ``device_map``, ...). A probe or task is a name, or ``{name: options}`` with
``limit``, ``metric`` (the one its findings compare; default its primary metric), ``title``,
``data`` (a path, or a folder name under the audit's ``data`` folder) and the probe's own options.
``deployment: [[A, B], ...]`` declares pairs of audited models that are one model, A as published
and B as deployed, for the deployment section where the files do not show it.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from workbench.backends import backend_names, get_backend
from workbench.errors import BackendUnavailableError, InvalidInputError, UnknownModelError
from workbench.models.loading import _HUB_ID, _looks_like_path, load_model
from workbench.models.registry import EMBEDDED
from workbench.probes.api import get_spec, probe_names
from workbench.tasks.data import shared_data_dir
from workbench.tasks.spec import builtin_tasks, load_task
from workbench.tasks.unit import task_unit

MIN_MODELS, MAX_MODELS = 2, 10
PILOT_ITEMS = 40
FLAGSHIP = Path(__file__).resolve().parent / "flagship.yaml"
# where a probe's data set lives under the data folder, when its folder is not named after it
DATA_FOLDERS = {"stereoset": "stereoset_intrasentence", "bbq_generative": "bbq"}
TITLES = {"crows_pairs": "CrowS-Pairs", "stereoset": "StereoSet", "winobias": "WinoBias", "winogender": "WinoGender",
          "bbq": "BBQ", "bbq_generative": "BBQ (generated answers)", "blimp": "BLiMP", "bold": "BOLD",
          "honest": "HONEST", "seat": "SEAT", "decisions": "Decision questions"}
# the optional engine each backend needs (module to import, install command from its registry entry)
ENGINES = {"llama.cpp": "llama_cpp"}
KEYS = {"title", "question", "authors", "method", "models", "probes", "tasks", "limit", "seed", "data", "reference",
        "deployment",
        "detect", "pilot", "store", "executor", "contamination", "chat", "limitations"}
UNIT_KEYS = {"limit", "metric", "title", "data"}
FLAGSHIP_ONLY = ("title", "question", "authors", "method", "chat", "contamination", "limitations")
# what every audit of these probes and tasks says about them (an audit file adds its own)
KNOWN_LIMITATIONS = {
    "crows_pairs": "Many pairs are not minimal or mix several changes (Blodgett et al. 2021); the categories are "
                   "US-centric; for causal models, full-sentence log-likelihood also rewards shorter or more frequent "
                   "wording, not only the stereotype.",
    "stereoset": 'Noisy items and an ill-defined "unrelated" option; ss and lms trade off inside icat.',
    "winobias": "Binary gender and US labour-statistics occupations; a gap measures pronoun preference in templated "
                "sentences, not behaviour in use.",
    "blimp": "Accuracy on synthetic minimal pairs is a coarse capability control, not a measure of usefulness.",
    "bbq": "Templated questions about US social groups; accuracy in ambiguous contexts mixes bias with a model's "
           "reluctance to answer \"unknown\".",
}


@dataclass(frozen=True)
class ModelSpec:
    """One audited model: ``label`` names it everywhere (the spec as given)."""

    label: str
    spec: str
    backend: str = "hf"
    options: dict = field(default_factory=dict)

    def identity(self) -> list:
        return [self.spec, self.backend, sorted(self.options.items(), key=str)]

    def load(self):
        """The loaded model, named by its label (``wb.load_model(spec, backend=..., **options)``)."""
        return load_model(self.spec, backend=self.backend, **{"name": self.label, **self.options})


@dataclass(frozen=True)
class UnitChoice:
    """A probe or task the audit measures, with its sample size and the metric its findings use."""

    kind: str                 # "probe" or "task"
    name: str
    limit: int | None = None  # items (probes) or items per group (tasks, e.g. BLiMP paradigms); None: all
    metric: str | None = None
    title: str = ""
    data: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.title or TITLES.get(self.name, self.name)


@dataclass
class AuditSpec:
    """A parsed, checked audit (see the module doc). ``text`` is the file as given (None when the
    audit was built from arguments); :meth:`to_yaml` is what runs, overrides included."""

    models: list
    units: list
    title: str = "Audit"
    question: str = ""
    authors: str = ""
    method: str = ""
    seed: int = 0
    data: str | None = None
    reference: str | None = None
    deployment: list = field(default_factory=list)   # declared (as published, as deployed) pairs of labels
    detect: float | None = None
    pilot: int = PILOT_ITEMS
    store: str | None = None
    executor: str = "local"
    contamination: dict | None = field(default_factory=dict)
    chat: dict | None = None
    limitations: list = field(default_factory=list)
    text: str | None = None

    def model(self, label: str) -> ModelSpec:
        return next(m for m in self.models if m.label == label)

    def identity(self) -> str:
        """What makes two runs the same audit for a store: the models (spec, backend, options) and
        the seed. Other choices (probes, sizes) may grow between runs of one audit."""
        return hashlib.sha256(json.dumps([[m.identity() for m in self.models], self.seed],
                                         default=str).encode()).hexdigest()[:16]

    def data_folder(self) -> Path | None:
        if self.data:
            return Path(self.data).expanduser()
        return shared_data_dir()

    def unit_data(self, unit: UnitChoice) -> Path | None:
        """The data path of a probe: its ``data`` (absolute, or a folder under the data folder),
        else the folder named after it; None for tasks (they name their own data)."""
        if unit.kind != "probe":
            return None
        if unit.data is None and get_spec(unit.name).default_data is not None:
            return None  # packaged templates
        given = Path(unit.data or DATA_FOLDERS.get(unit.name, unit.name)).expanduser()
        if given.is_absolute():
            return given
        root = self.data_folder()
        if root is None:
            raise InvalidInputError(f"probe {unit.name!r} needs its data set and no data folder was found: set "
                                    "`data:` in the audit file (or --data DIR), or WORKBENCH_SHARED_DATA")
        return root / given

    def to_dict(self) -> dict:
        models = [m.label if not m.options and _label_of(m.spec, m.backend) == m.label else
                  {"spec": m.spec, "backend": m.backend, "name": m.label, "options": dict(m.options)}
                  for m in self.models]

        def unit(u: UnitChoice):
            extra = {k: v for k, v in (("limit", u.limit), ("metric", u.metric), ("title", u.title), ("data", u.data))
                     if v not in (None, "")}
            extra.update(u.options)
            return {u.name: extra}
        out = {"title": self.title, "question": self.question, "authors": self.authors, "method": self.method,
               "models": models, "probes": [unit(u) for u in self.units if u.kind == "probe"],
               "tasks": [unit(u) for u in self.units if u.kind == "task"], "seed": self.seed, "data": self.data,
               "reference": self.reference, "deployment": [list(p) for p in self.deployment], "detect": self.detect,
               "pilot": self.pilot, "store": self.store, "executor": self.executor,
               "contamination": self.contamination if self.contamination is not None else False,
               "chat": self.chat, "limitations": self.limitations}
        return {k: v for k, v in out.items() if v not in (None, "", [])}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)


# ---- reading ---------------------------------------------------------------------------------
def _label_of(spec: str, backend: str) -> str:
    return spec if backend == "hf" else f"{spec}@{backend}"


def split_spec(text: str) -> tuple[str, str]:
    """``"SPEC@BACKEND"`` -> (spec, backend); a spec without a known backend suffix is taken whole
    (a path may hold "@"), but a suffix that looks like a backend name and is not one is refused."""
    text = str(text).strip()
    if not text:
        raise InvalidInputError("a model spec is empty: give an alias (see wb.list_models()), a folder, a .gguf "
                                "file, a hub id or a server URL, optionally followed by @BACKEND")
    spec, at, backend = text.rpartition("@")
    if not at:
        return text, "hf"
    if backend in backend_names():
        if not spec:
            raise InvalidInputError(f"model {text!r} names a backend but no model: write SPEC@{backend}")
        return spec, backend
    if "/" not in backend and "." not in backend.replace("llama.cpp", "") and not Path(text).exists():
        raise InvalidInputError(f"unknown backend {backend!r} in model {text!r}; backends: {backend_names()} "
                                "(write SPEC@BACKEND, e.g. smollm2-135m-instruct@llama.cpp)")
    return text, "hf"


def model_spec(entry) -> ModelSpec:
    """A :class:`ModelSpec` from a string or a mapping (see the module doc)."""
    if isinstance(entry, ModelSpec):
        return entry
    if isinstance(entry, str):
        spec, backend = split_spec(entry)
        return ModelSpec(entry.strip(), spec, backend)
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - {"spec", "backend", "name", "options"})
        if unknown or "spec" not in entry:
            raise InvalidInputError(f"a model in the audit file is SPEC[@BACKEND] or a mapping with 'spec' (and "
                                    f"'backend', 'name', 'options'); got keys {sorted(entry)}")
        spec, backend = split_spec(entry["spec"])
        if entry.get("backend") is not None:
            if backend != "hf" and backend != entry["backend"]:
                raise InvalidInputError(f"model {entry['spec']!r} names backend {backend!r} and the mapping says "
                                        f"{entry['backend']!r}: give it once")
            backend = str(entry["backend"])
            if backend not in backend_names():
                raise InvalidInputError(f"unknown backend {backend!r} for model {spec!r}; backends: {backend_names()}")
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidInputError(f"the options of model {spec!r} must be a mapping (e.g. {{model_name: ...}}), "
                                    f"got {options!r}")
        return ModelSpec(str(entry.get("name") or _label_of(spec, backend)), spec, backend, dict(options))
    raise InvalidInputError(f"a model is SPEC[@BACKEND] or a mapping with 'spec'; got {type(entry).__name__}")


def _unit_entries(value, kind: str) -> list[tuple[str, dict]]:
    """(name, options) pairs from a list of names/mappings, a mapping, or "a,b" text."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, dict):
        value = [{k: v} for k, v in value.items()]
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"{kind}s are a list of names (or {{name: options}}), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, str):
            out.append((v.strip(), {}))
        elif isinstance(v, dict) and len(v) == 1:
            (name, opts), = v.items()
            if isinstance(opts, int) and not isinstance(opts, bool):
                opts = {"limit": opts}  # `crows_pairs: 40`: a sample size
            if opts is not None and not isinstance(opts, dict):
                raise InvalidInputError(f"{kind} {name!r}: its options must be a mapping or a sample size, got {opts!r}")
            out.append((str(name), dict(opts or {})))
        else:
            raise InvalidInputError(f"a {kind} is a name or {{name: options}}, got {v!r}")
    return out


def unit_choice(name: str, options: dict, kind: str, default_limit) -> UnitChoice:
    """A checked probe or task: the name must be known, its options its own."""
    options = dict(options)
    own = {k: options.pop(k) for k in list(options) if k in UNIT_KEYS}
    limit = own.get("limit", default_limit)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"{kind} {name!r}: limit must be a positive integer, got {limit!r}")
    if kind == "probe":
        if name not in probe_names():
            raise InvalidInputError(f"unknown probe {name!r}; probes: {', '.join(probe_names())} (tasks such as blimp "
                                    "go under tasks:)")
        spec = get_spec(name)
        unknown = sorted(set(options) - set(spec.defaults) - {"format", "system_prompt", "encoding"})
        if unknown:
            raise InvalidInputError(f"unknown option(s) {unknown} for probe {name!r}; it takes {sorted(spec.defaults)}")
        metrics = [m.name for m in spec.metrics({**spec.defaults, **options})]
    else:
        if options:
            raise InvalidInputError(f"task {name!r} takes only {sorted(UNIT_KEYS)} in an audit file, got "
                                    f"{sorted(options)}")
        if name not in builtin_tasks() and not Path(name).exists():
            raise InvalidInputError(f"unknown task {name!r}; built-in tasks: {', '.join(sorted(builtin_tasks()))} "
                                    "(or the path of a YAML task spec; probes go under probes:)")
        metrics = [m.name for m in task_unit(load_task(name)).metrics({})]
    metric = own.get("metric")
    if metric is not None and metric not in metrics:
        raise InvalidInputError(f"{kind} {name!r} has no metric {metric!r}; it has {metrics}")
    return UnitChoice(kind, name, limit, metric, str(own.get("title") or ""),
                      None if own.get("data") is None else str(own["data"]), options)


def check_models(models: list[ModelSpec]) -> None:
    """2 to 10 distinct models whose backends are known and installed, each spec plausible."""
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise InvalidInputError(f"an audit compares {MIN_MODELS} to {MAX_MODELS} models, got {len(models)}: "
                                + (", ".join(m.label for m in models) or "none"))
    seen: dict = {}
    for m in models:
        key = json.dumps(m.identity(), default=str)
        if m.label in {x.label for x in seen.values()} or key in seen:
            other = seen.get(key) or next(x for x in seen.values() if x.label == m.label)
            raise InvalidInputError(f"duplicate model: {m.label!r} and {other.label!r} are the same spec and backend; "
                                    "list each model once (two precisions of one model are two files or backends)")
        seen[key] = m
    for m in models:
        check_model_spec(m)


def check_model_spec(m: ModelSpec) -> None:
    """What can be checked without loading: the backend's optional engine, an alias, a path."""
    entry = get_backend(m.backend)
    module = ENGINES.get(m.backend)
    if module and importlib.util.find_spec(module) is None:
        raise BackendUnavailableError(f"model {m.label!r} runs on the {m.backend} backend, which needs {module} "
                                      f"(not installed). Install it with: {entry.install}")
    if m.backend == "openai":
        if not str(m.spec).startswith(("http://", "https://")):
            raise InvalidInputError(f"model {m.label!r}: the openai backend takes a server URL "
                                    "(http://host:port/v1@openai)")
        return
    text = os.path.expanduser(m.spec)
    if m.spec in EMBEDDED or os.path.exists(text):
        return
    if _looks_like_path(m.spec):
        raise InvalidInputError(f"model {m.label!r}: no such file or folder {text!r} (resolved from {os.getcwd()})")
    if not _HUB_ID.match(m.spec):
        raise UnknownModelError(f"unknown model {m.label!r}: not an embedded alias ({', '.join(sorted(EMBEDDED))}), "
                                "an existing file or folder, a hub id 'owner/name' or a server URL")


def _number(value, what: str, lo: float, hi: float, integer: bool = False):
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise InvalidInputError(f"{what} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
    return value


def build_spec(raw: dict, text: str | None = None) -> AuditSpec:
    """An :class:`AuditSpec` from the mapping of an audit file, checked."""
    if not isinstance(raw, dict):
        raise InvalidInputError(f"an audit file is a YAML mapping (models:, probes:, ...), got {type(raw).__name__}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InvalidInputError(f"unknown key(s) {unknown} in the audit file; it takes {sorted(KEYS)}")
    given_models = raw.get("models")
    if given_models is not None and not isinstance(given_models, (list, tuple)):
        raise InvalidInputError(f"models: is a list of 2 to 10 specs, got {type(given_models).__name__} "
                                f"{given_models!r}: write models: [smollm2-135m-instruct, gemma-3-270m] (YAML) or "
                                "--models SPEC SPEC ...")
    models = [model_spec(m) for m in given_models or []]
    check_models(models)
    limit = _number(raw.get("limit"), "limit", 1, 10 ** 9, integer=True)
    units = [unit_choice(n, o, "probe", limit) for n, o in _unit_entries(raw.get("probes"), "probe")]
    units += [unit_choice(n, o, "task", limit) for n, o in _unit_entries(raw.get("tasks"), "task")]
    if not units:
        raise InvalidInputError("the audit measures nothing: name probes (probes: [crows_pairs, ...] or --probes) "
                                "or tasks (tasks: [blimp] or --tasks)")
    names = [(u.kind, u.name) for u in units]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"a probe or task is listed twice: {sorted({n for n in names if names.count(n) > 1})}")
    reference = raw.get("reference")
    if reference is not None:
        reference = _label(models, reference, "the reference")
    executor = raw.get("executor") or "local"
    if executor not in ("local", "ray"):
        raise InvalidInputError(f"executor must be 'local' or 'ray', got {executor!r}")
    contamination = raw.get("contamination", {})
    if contamination is False or contamination is None:
        contamination = None
    elif not isinstance(contamination, dict):
        raise InvalidInputError("contamination: is a mapping (probe, column, items, items_per_shard, permutations) "
                                f"or false, got {contamination!r}")
    chat = raw.get("chat")
    if chat is not None and not isinstance(chat, dict):
        raise InvalidInputError(f"chat: is a mapping (models, probes, generate), got {chat!r}")
    limitations = raw.get("limitations") or []
    if not isinstance(limitations, list) or not all(isinstance(x, dict) and {"subject", "text"} <= set(x)
                                                    for x in limitations):
        raise InvalidInputError("limitations: is a list of {subject: ..., text: ...}")
    spec = AuditSpec(models=models, units=units, title=str(raw.get("title") or _default_title(models)),
                     question=str(raw.get("question") or ""), authors=str(raw.get("authors") or ""),
                     method=str(raw.get("method") or ""),
                     seed=_number(raw.get("seed", 0), "seed", 0, 2 ** 32 - 1, integer=True),
                     data=None if raw.get("data") is None else str(raw["data"]), reference=reference,
                     deployment=_deployment_pairs(models, raw.get("deployment")),
                     detect=_number(raw.get("detect"), "detect (points)", 0.1, 100),
                     pilot=_number(raw.get("pilot", PILOT_ITEMS), "pilot (items per model)", 10, 10_000, integer=True),
                     store=None if raw.get("store") is None else str(raw["store"]), executor=executor,
                     contamination=contamination, chat=chat, limitations=limitations, text=text)
    _check_chat(spec)
    return spec


def _label(models, given, what: str) -> str:
    """The label of the audited model ``given`` names (its label, or a spec only one model has)."""
    labels = [m.label for m in models]
    if given in labels:
        return given
    matches = [m.label for m in models if m.spec == given]
    if len(matches) != 1:
        raise InvalidInputError(f"{what} {given!r} is not one of the audited models {labels}")
    return matches[0]


def _deployment_pairs(models, value) -> list[tuple[str, str]]:
    """``deployment: [[A, B], ...]`` (or ``"A,B"`` strings, as ``--deployment A,B`` gives them):
    pairs declared to be one model, A as published (the reference of the flips), B as deployed.
    The deployment section then compares them whatever the automatic detection finds (the card
    says the pair was declared, and what detection found)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"deployment: is a list of pairs [[A, B], ...] (A as published, B as deployed), "
                                f"got {value!r}")
    pairs = []
    for p in value:
        if isinstance(p, str):
            p = [x.strip() for x in p.split(",")]
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(x, str) for x in p):
            raise InvalidInputError(f"a deployment pair is two audited models [A, B] (A as published, B as deployed): "
                                    f"write deployment: [[A, B]] or --deployment A,B; got {p!r}")
        a, b = _label(models, p[0], "deployment model"), _label(models, p[1], "deployment model")
        if a == b:
            raise InvalidInputError(f"a deployment pair names {a!r} twice: give the model as published and as deployed")
        if (a, b) in pairs or (b, a) in pairs:
            raise InvalidInputError(f"the deployment pair {a!r}, {b!r} is listed twice")
        pairs.append((a, b))
    return pairs


def _check_chat(spec: AuditSpec) -> None:
    if not spec.chat:
        return
    unknown = sorted(set(spec.chat) - {"models", "probes", "generate"})
    if unknown:
        raise InvalidInputError(f"unknown key(s) {unknown} under chat:; it takes models, probes, generate")
    labels = [m.label for m in spec.models]
    for label in spec.chat.get("models") or []:
        if label not in labels:
            raise InvalidInputError(f"chat: model {label!r} is not one of the audited models {labels}")
    for key in ("probes", "generate"):
        for name, opts in _unit_entries(spec.chat.get(key), "probe"):
            unit_choice(name, opts, "probe", None)


def _default_title(models) -> str:
    return "Audit of " + ", ".join(m.label for m in models)


def check_audit_path(text: str) -> None:
    """Refuse, with what to do, a one-line audit that is neither an audit file's path (``*.yaml``,
    ``*.yml``) nor a YAML mapping written inline: a probe or task name that slipped out of
    ``--probes a b`` (the list is comma-separated), a word, or a file of another kind. Always
    raises: :func:`parse_spec` calls it on one-line text that is not a YAML mapping."""
    word = text.strip()
    names = [n.strip() for n in word.split(",")]
    if names and all(n in probe_names() or n in builtin_tasks() for n in names):
        kind = "probe" if names[0] in probe_names() else "task"
        raise InvalidInputError(f"{word!r} was read as the audit file, but it names a {kind}: list several "
                                f"{kind}s comma-separated with no space (--{kind}s A,{word}, not --{kind}s A {word}), "
                                "or give an audit file ending .yaml or .yml")
    if Path(word).expanduser().exists():
        raise InvalidInputError(f"{word} is not an audit file: give a YAML audit file ending .yaml or .yml "
                                "(workbench/audit/flagship.yaml shows one), an audit notebook (.ipynb), or none "
                                "for the flagship audit")
    raise InvalidInputError(f"{word!r} is not an audit file: give the path of a YAML audit file ending .yaml or .yml, "
                            "or none for the flagship audit (models go after --models, probes comma-separated after "
                            "--probes)")


def parse_spec(source, **overrides) -> AuditSpec:
    """An audit from a YAML file path, YAML text, a mapping or an :class:`AuditSpec`; None is the
    flagship audit of the embedded models. ``overrides`` (keys of the audit file) win, key by key
    over a file (``probes=`` replaces the file's probes; its tasks stay). With no file (None),
    ``probes``/``tasks`` name all that is measured (``probes=["crows_pairs"]`` alone: no task);
    the flagship's probes and tasks run only when neither is given.

    >>> [u.name for u in parse_spec(None, models=["smollm2-135m-instruct", "gemma-3-270m"],
    ...                             probes="crows_pairs").units]
    ['crows_pairs']
    >>> [u.name for u in parse_spec(None, tasks="blimp").units]
    ['blimp']
    """
    text = None
    if isinstance(source, AuditSpec):
        raw = source.to_dict()
        text = source.text
    elif source is None:
        text = FLAGSHIP.read_text()
        raw = yaml.safe_load(text)
    elif isinstance(source, dict):
        raw = copy.deepcopy(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        one_line = "\n" not in str(source)
        is_file = one_line and str(source).lower().endswith((".yaml", ".yml"))
        if is_file and not path.is_file():
            raise InvalidInputError(f"audit file not found: {path} (give the path of a YAML audit file)")
        try:
            text = path.read_text() if is_file else str(source)
        except UnicodeDecodeError:
            raise InvalidInputError(f"{path} is not a text file: an audit file is YAML "
                                    "(workbench/audit/flagship.yaml shows one)") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            if one_line and not is_file:
                check_audit_path(str(source))
            raise InvalidInputError(f"the audit file is not valid YAML: {' '.join(str(e).split())}") from None
        if one_line and not is_file and not isinstance(raw, dict):
            check_audit_path(str(source))  # a word, or a file that is not an audit file: say what to do
        if raw is not None and not isinstance(raw, dict):
            where = path if is_file else "the audit text"
            raise InvalidInputError(f"{where} holds a YAML {type(raw).__name__}, not a mapping: an audit file is "
                                    "keys and values (models: [...], probes: [...]; workbench/audit/flagship.yaml "
                                    "shows one)")
    else:
        raise InvalidInputError(f"an audit is a YAML file path, YAML text or a mapping, got {type(source).__name__}")
    raw = dict(raw or {})
    if isinstance(source, (str, os.PathLike)) and text is not None and "\n" not in str(source) and raw.get("data"):
        folder = Path(source).expanduser().resolve().parent   # a file's relative data folder is beside it
        raw["data"] = str((folder / str(raw["data"])).resolve()) if not Path(str(raw["data"])).is_absolute() else raw["data"]
    given = {k: v for k, v in overrides.items() if v is not None}
    names_measures = given.get("probes") is not None or given.get("tasks") is not None
    if source is None and (given.get("models") is not None or names_measures):
        # not the flagship audit: what names or is sized for its two models and its choices goes
        # (the chat readings of SmolLM2, the title, the full-file contamination check)
        for key in FLAGSHIP_ONLY:
            raw.pop(key, None)
        if given.get("models") is not None:
            text = None   # no audit file was given: the card must not record the flagship's as this audit's
        if names_measures:
            # --probes/--tasks without an audit file name everything measured: the flagship's other
            # kind does not stay behind (--probes crows_pairs measures no BLiMP); with neither, the
            # flagship's probes and tasks are measured
            raw.pop("probes", None)
            raw.pop("tasks", None)
    if given.get("limit") is not None or given.get("detect") is not None:
        # --limit N: every probe and task, whatever the file says per unit; --detect D: the plan sets
        # the sizes (a --limit given with it caps them)
        for key in ("probes", "tasks"):
            raw[key] = [{n: {k: v for k, v in o.items() if k != "limit"}} for n, o in _unit_entries(raw.get(key), key[:-1])]
        if given.get("limit") is None:
            raw.pop("limit", None)
    raw.update(given)  # `text` stays the file as given; to_yaml() is what runs
    return build_spec(raw, text)
