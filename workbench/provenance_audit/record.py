"""``wb.documentation(model)``: what a model's makers declare, each statement with its source,
the transparency indicators it supports, and the machine-readable bill of materials.

>>> import workbench as wb
>>> doc = wb.documentation(wb.testing.tiny_model("gpt2"))
>>> list(doc.to_frame().columns)
['field', 'value', 'source']
>>> doc.indicators().set_index("indicator").loc["training data", "status"]
'not disclosed'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from workbench.errors import InvalidTypeError
from workbench.models.model import Model
from workbench.provenance import record
from workbench.provenance_audit.bom import to_cyclonedx
from workbench.provenance_audit.claims import claims_table
from workbench.provenance_audit.fmti import MAPPING, not_checkable
from workbench.provenance_audit.licences import spdx_id
from workbench.provenance_audit.measure import measure, not_measurable
from workbench.provenance_audit.sources import collect, quantisation_bits
from workbench.results import Result

STATUSES = ("disclosed", "not disclosed", "contradicted", "not comparable")
SIZE_TOLERANCE = 0.10  # a size label ("135M") is a rounded number: within 10% of the count agrees



def _norm(text) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def parse_count(value, k: int = 1000) -> float | None:
    """135M -> 1.35e8, "1.7B" -> 1.7e9, "8k" -> 8000 (k=1024: 8192), 576 -> 576."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.match(r"^\s*([\d.]+)\s*([kmbt]?)", str(value).lower())
    if not m:
        return None
    try:
        n = float(m.group(1))
    except ValueError:
        return None
    return n * {"": 1, "k": k, "m": k ** 2, "b": k ** 3, "t": k ** 4}[m.group(2)]


def same_count(a, b, tolerance: float = 0.0) -> bool:
    """Count ``a`` agrees with count ``b``: equal within ``tolerance`` of ``b``, read in thousands
    of 1000 or of 1024 ("8k" is 8000 or 8192).

    >>> same_count("8k", 8192), same_count("135M", 134_515_008, 0.1), same_count(4096, 256)
    (True, True, False)
    """
    xs = {parse_count(a), parse_count(a, 1024)} - {None}
    ys = {parse_count(b), parse_count(b, 1024)} - {None}
    return any(abs(x - y) <= tolerance * abs(y) for x in xs for y in ys)


def _arch_agrees(declared, measured_type: str, class_name: str) -> bool:
    d, m = _norm(declared), _norm(measured_type.replace("_text", ""))
    return bool(d) and (d.startswith(m) or m.startswith(d) or d == _norm(class_name))


@dataclass
class Documentation(Result):
    """``frame``: field, value, source (declared statements, then ``measured`` facts, and the
    facts that are "not measurable" on this model). ``evaluations``: the declared evaluation
    results; ``files``: files with their sha256; ``measured``: {fact: (value, how)};
    ``not_measurable``: {fact: why}."""

    evaluations: list = field(default_factory=list)
    files: list = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    model_info: dict = field(default_factory=dict)
    not_measurable: dict = field(default_factory=dict)  # {fact: why the loaded model cannot measure it}

    def summary(self) -> pd.DataFrame:
        return self.indicators()

    def declared(self, name: str) -> list:
        """Every declared value of ``name`` (not the measured ones), in source order."""
        f = self.frame
        return f[(f.field == name) & ~f.source.str.startswith("measured")].value.tolist()

    def sources(self, name: str) -> list[str]:
        f = self.frame
        return f[(f.field == name) & ~f.source.str.startswith("measured")].source.tolist()

    def _check(self, name: str, agrees, same=None) -> tuple[str, str]:
        """Status and evidence of a declared fact: each declaration against the measurement
        (``agrees(value, measured, source)``); where nothing measures it, the declarations against
        each other (``same(a, b)``) and the evidence says "declared, not measured", never that a
        measurement agrees."""
        values, sources = self.declared(name), self.sources(name)
        got, why = self.measured.get(name), self.not_measurable.get(name)
        if not values:
            return "not disclosed", ("nothing in the artifact declares it" + (
                f"; measured: {got[0]} ({got[1]})" if got else f"; not measurable: {why}" if why else ""))
        said = "; ".join(f"{v} ({s})" for v, s in zip(values, sources))
        if got is not None:
            bad = [(v, s) for v, s in zip(values, sources) if not agrees(v, got[0], s)]
            if bad:
                return "contradicted", (f"declared {'; '.join(f'{v} ({s})' for v, s in bad)} but measured {got[0]} "
                                        f"({got[1]})")
            return "disclosed", f"{said}; agrees with the measurement {got[0]} ({got[1]})"
        if same is not None and any(not same(v, values[0]) for v in values[1:]):
            return "contradicted", f"the sources disagree: {said}"
        return "disclosed", f"declared, not measured: {said}" + (f"; not measurable: {why}" if why else "")

    def indicators(self, claims: pd.DataFrame | None = None) -> pd.DataFrame:
        """indicator, fmti and fmti_2025 (the FMTI indicator it corresponds to in the 2023 and the
        2025 index, "Subdomain: Indicator"; empty where that version has none: see
        :mod:`workbench.provenance_audit.fmti`), status (disclosed, not disclosed, contradicted),
        evidence. A declared fact is checked against what the weights and tokenizer measure, or
        against the other sources where nothing measures it (the evidence then says "declared, not
        measured"). ``claims``: a :meth:`claims` table adds whether the declared evaluation results
        were reproduced: disclosed (reproduced), contradicted (outside the interval under the same
        settings) or not comparable (other or unstated settings). FMTI indicators no artifact can
        show: :meth:`not_checkable`."""
        arch_cls = self.model_info.get("class_name", "")
        rows = []

        def add(indicator, status_evidence):
            fmti_2023, fmti_2025 = MAPPING[indicator]
            rows.append({"indicator": indicator, "fmti": fmti_2023, "fmti_2025": fmti_2025,
                         "status": status_evidence[0], "evidence": status_evidence[1]})

        def any_of(*names):
            found = [(n, v, s) for n in names for v, s in zip(self.declared(n), self.sources(n))]
            if not found:
                return "not disclosed", f"no {' or '.join(n.replace('_', ' ') for n in names)} in the artifact"
            return "disclosed", "; ".join(f"{n.replace('_', ' ')}: {_short(v)} ({s})" for n, v, s in found)

        card = [f for f in self.files if f["role"] == "model card"]
        add("model card", ("disclosed", f"README.md (sha256 {card[0]['sha256'][:12]}…)") if card else
            ("not disclosed", "no README.md model card with the weights" + (
                "; the package descriptions say: " + "; ".join(list(dict.fromkeys(map(str, self.declared("description"))))[-2:])
                if self.declared("description") else "")))
        add("developer named", any_of("organisation"))
        add("name and version", any_of("name", "version", "finetune"))
        add("model size", self._check("parameters", lambda v, m, s: same_count(v, m, SIZE_TOLERANCE),
                                      lambda a, b: same_count(a, b, SIZE_TOLERANCE)))
        add("architecture", self._check("architecture", lambda v, m, s: _arch_agrees(v, m, arch_cls)))
        add("context length", self._check("context_length", lambda v, m, s: same_count(v, m), same_count))
        tok = self.measured.get("tokenizer_size", (None,))[0]
        # a config's vocab_size is the embedding's row count by definition; a card or header may
        # mean the tokenizer's length, which padding makes smaller than the embedding
        add("vocabulary size", self._check(
            "vocab_size", lambda v, m, s: parse_count(v) == m or (not s.startswith("config") and parse_count(v) == tok),
            same_count))
        add("quantisation", self._check("quantisation", lambda v, m, s: _quant_agrees(v, m)))
        add("licence", self._licence())
        add("base model", any_of("base_models"))
        add("training data", any_of("training_datasets", "training_data_description"))
        add("languages", any_of("languages"))
        add("intended use", any_of("intended_use"))
        add("limitations", any_of("limitations"))
        add("evaluation results", ("disclosed", f"{len(self.evaluations)} declared result(s): " + "; ".join(
                f"{e['task']} {e['metric']} = {e['value']}" for e in self.evaluations[:5]))
            if self.evaluations else any_of("evaluation_description"))
        if claims is not None and len(claims):
            add("evaluation reproduced", _reproduced(claims))
        add("prompt format", any_of("chat_template", "generation_config"))
        weights = [f for f in self.files if f["role"] == "weights"]
        tensors = self.model_info.get("weights_sha256") or ""
        add("weights available", ("disclosed", "; ".join(f"{f['name']} sha256 {f['sha256'][:12]}…" for f in weights))
            if weights else ("not disclosed", f"in memory only: no weight files to point to (the tensors hash to "
                                              f"{tensors[:12]}…)") if tensors else
            ("not disclosed", "served: the weights are not reachable from here, so none could be hashed"))
        return pd.DataFrame(rows, columns=["indicator", "fmti", "fmti_2025", "status", "evidence"])

    def not_checkable(self) -> pd.DataFrame:
        """The FMTI domains whose indicators no artifact can show (:func:`fmti_not_checkable`)."""
        return fmti_not_checkable()

    def _licence(self) -> tuple[str, str]:
        values, sources = self.declared("licence"), self.sources("licence")
        if not values:
            return "not disclosed", "no licence in the card, header, licence files or package metadata"
        keyed = {}
        for v, s in zip(values, sources):
            keyed.setdefault(spdx_id(v) or f"unrecognised: {v}", []).append(s)
        known = [k for k in keyed if not k.startswith("unrecognised")]
        said = "; ".join(f"{k} ({', '.join(s)})" for k, s in keyed.items())
        if len(known) > 1:
            return "contradicted", f"the sources name different licences: {said}"
        return "disclosed", said

    def claims(self, measured=None, claims=None, settings: dict | None = None) -> pd.DataFrame:
        """Declared evaluation results beside the workbench's own measurement of the same task.
        See :func:`workbench.provenance_audit.claims.claims_table`."""
        return claims_table(self.evaluations if claims is None else claims, measured, settings)

    def to_cyclonedx(self) -> dict:
        """The record as a CycloneDX 1.6 ML-BOM (JSON as a dict); see :mod:`workbench.provenance_audit.bom`."""
        return to_cyclonedx(self)

    def plot(self, ax=None):
        """The indicators as a strip coloured by status."""
        import matplotlib.pyplot as plt
        ind = self.indicators()
        colour = {"disclosed": "#2e7d32", "not disclosed": "#bdbdbd", "contradicted": "#c62828",
                  "not comparable": "#f9a825"}
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 0.28 * len(ind) + 1))
        ax.barh(ind.indicator, 1, color=[colour[s] for s in ind.status])
        ax.invert_yaxis()
        ax.set(xticks=[], title=f"documentation of {self.model_info.get('name')}")
        for s, c in colour.items():
            ax.bar(0, 0, color=c, label=s)
        ax.legend(fontsize="small", loc="lower right")
        return ax


def _short(v, n: int = 120) -> str:
    s = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return s if len(s) <= n else s[:n - 1] + "…"


def _quant_agrees(declared, measured) -> bool:
    bits = quantisation_bits(declared)
    four = measured == "4-bit levels"
    if bits is None:  # a declaration without a bit width ("gptq", "none") is checked only for "none"
        return not (str(declared).lower() in ("none", "no", "false") and four)
    return (bits <= 4) == four


def _reproduced(claims: pd.DataFrame) -> tuple[str, str]:
    """Contradicted only by a claim outside the workbench's interval whose stated settings match
    the measurement's; a claim made under other settings (5-shot against 0-shot) is not
    comparable, whichever side of the interval it falls, and the differences are listed."""
    checked = claims[claims["inside"].notna()]
    if checked.empty:
        return "not disclosed", "no declared result has a workbench measurement of the same task"
    differs = checked["setting_differences"].fillna("").astype(str).str.len() > 0
    comparable, other = checked[~differs], checked[differs]

    def said(rows, settings=False):
        return "; ".join(f"{r.task} {r.metric}: claimed {r.claimed}, measured {r.measured} [{r.ci_low:.3g}, "
                         f"{r.ci_high:.3g}]" + (f" ({r.setting_differences})" if settings else "")
                         for r in rows.itertuples())

    aside = f"; not comparable (the settings differ): {said(other, True)}" if len(other) else ""
    out = comparable[comparable["inside"] == False]  # noqa: E712 (a boolean column with NaN)
    if len(out):
        return "contradicted", f"outside the interval with the same settings: {said(out)}{aside}"
    if len(comparable):
        return "disclosed", f"reproduced (inside the interval, the same settings): {said(comparable)}{aside}"
    return "not comparable", f"every measured claim was made under other settings: {said(other, True)}"


def fmti_not_checkable() -> pd.DataFrame:
    """Every FMTI indicator (2023 and 2025 versions) that the artifact cannot show, by subdomain,
    and why (:func:`workbench.provenance_audit.fmti.not_checkable`)."""
    return not_checkable()


def documentation(model) -> Documentation:
    """The documentation record of a loaded model, read offline from what its artifact carries
    (model card, GGUF header, config, tokenizer, generation config, licence files, package
    metadata for embedded models), beside what is measured on the loaded weights.

    Example
    -------
    >>> import workbench as wb
    >>> doc = wb.documentation(wb.testing.tiny_model("llama"))
    >>> doc.to_frame().query("field == 'vocab_size'").source.tolist()[-1][:8]
    'measured'
    """
    if not isinstance(model, Model):
        raise InvalidTypeError(f"documentation needs a loaded model (wb.load_model(...)), got {type(model).__name__}")
    rows, evals, files, folder = collect(model)
    for r in rows:  # licences as SPDX ids where one exists; the words as written stay in the source
        if r["field"] == "licence" and r.get("spdx") and r["spdx"] != r["value"]:
            r["source"] = f"{r['source']}: {r['value']!r}"
            r["value"] = r["spdx"]
    for e in evals:
        rows.append({"field": "evaluation_result", "value": f"{e['task']} {e['metric']} = {e['value']}"
                     + (f" ({e['shots']}-shot)" if e.get("shots") is not None else ""), "source": e["source"]})
    got = measure(model)
    rows += [{"field": k, "value": v, "source": f"measured: {how}"} for k, (v, how) in got.items()]
    missing = not_measurable(model, got)  # said so, never entered as a value (a served model's 0 parameters)
    rows += [{"field": k, "value": "not measurable", "source": f"measured: not measurable ({why})"}
             for k, why in missing.items()]
    frame = pd.DataFrame([{k: r[k] for k in ("field", "value", "source")} for r in rows],
                         columns=["field", "value", "source"])
    info = {"name": model.name, "kind": model.kind, "fingerprint_id": model.fingerprint_id,
            "architecture": model.architecture, "class_name": type(model.hf).__name__ if model.hf is not None else "",
            "weights_sha256": model.fingerprint.get("weights_sha256", ""), "licence": model.licence,
            "source": model.source, "folder": str(folder) if folder else None}
    return Documentation(frame, record(model, folder=info["folder"]), evaluations=evals, files=files,
                         measured=got, model_info=info, not_measurable=missing)
