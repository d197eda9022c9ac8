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

from workbench.provenance_audit.fmti import MAPPING, not_checkable
from workbench.provenance_audit.licences import spdx_id
from workbench.provenance_audit.measure import measure
from workbench.provenance_audit.sources import collect, quantisation_bits
from workbench.errors import InvalidTypeError
from workbench.provenance import record
from workbench.results import Result

STATUSES = ("disclosed", "not disclosed", "contradicted")
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


def _arch_agrees(declared, measured_type: str, class_name: str) -> bool:
    d, m = _norm(declared), _norm(measured_type.replace("_text", ""))
    return bool(d) and (d.startswith(m) or m.startswith(d) or d == _norm(class_name))


@dataclass
class Documentation(Result):
    """``frame``: field, value, source (declared statements, then ``measured`` facts).
    ``evaluations``: the declared evaluation results; ``files``: files with their sha256;
    ``measured``: {fact: (value, how)}."""

    evaluations: list = field(default_factory=list)
    files: list = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    model_info: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        return self.indicators()

    def declared(self, name: str) -> list:
        """Every declared value of ``name`` (not the measured ones), in source order."""
        f = self.frame
        return f[(f.field == name) & ~f.source.str.startswith("measured")].value.tolist()

    def sources(self, name: str) -> list[str]:
        f = self.frame
        return f[(f.field == name) & ~f.source.str.startswith("measured")].source.tolist()

    def _check(self, name: str, agrees) -> tuple[str, str]:
        values, sources = self.declared(name), self.sources(name)
        if not values:
            got = self.measured.get(name)
            return "not disclosed", ("nothing in the artifact declares it" + (
                f"; measured: {got[0]} ({got[1]})" if got else ""))
        said = "; ".join(f"{v} ({s})" for v, s in zip(values, sources))
        got = self.measured.get(name)
        if got is None or agrees is None:
            return "disclosed", said
        bad = [(v, s) for v, s in zip(values, sources) if not agrees(v, got[0])]
        if bad:
            return "contradicted", (f"declared {'; '.join(f'{v} ({s})' for v, s in bad)} but measured {got[0]} "
                                    f"({got[1]})")
        return "disclosed", f"{said}; agrees with the measurement {got[0]} ({got[1]})"

    def indicators(self, claims: pd.DataFrame | None = None) -> pd.DataFrame:
        """indicator, fmti and fmti_2025 (the FMTI indicator it corresponds to in the 2023 and the
        2025 index, "Subdomain: Indicator"; empty where that version has none: see
        :mod:`workbench.provenance_audit.fmti`), status (disclosed, not disclosed, contradicted),
        evidence. ``claims``: a :meth:`claims` table adds whether the declared evaluation results
        were reproduced. FMTI indicators no artifact can show:
        :meth:`not_checkable`."""
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
        add("model size", self._check(
            "parameters", lambda v, m: (p := parse_count(v)) is not None and abs(p - m) <= SIZE_TOLERANCE * m))
        add("architecture", self._check("architecture", lambda v, m: _arch_agrees(v, m, arch_cls)))
        add("context length", self._check("context_length", lambda v, m: parse_count(v, 1024) == m or parse_count(v) == m))
        tok = self.measured.get("tokenizer_size", (None,))[0]
        add("vocabulary size", self._check("vocab_size", lambda v, m: parse_count(v) in (m, tok)))
        add("quantisation", self._check("quantisation", _quant_agrees))
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
            if weights else ("disclosed", f"in memory only; tensors hashed: {tensors[:12]}…") if tensors else
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
        from workbench.provenance_audit.claims import claims_table
        return claims_table(self.evaluations if claims is None else claims, measured, settings)

    def to_cyclonedx(self) -> dict:
        """The record as a CycloneDX 1.6 ML-BOM (JSON as a dict); see :mod:`workbench.provenance_audit.bom`."""
        from workbench.provenance_audit.bom import to_cyclonedx
        return to_cyclonedx(self)

    def plot(self, ax=None):
        """The indicators as a strip coloured by status."""
        import matplotlib.pyplot as plt
        ind = self.indicators()
        colour = {"disclosed": "#2e7d32", "not disclosed": "#bdbdbd", "contradicted": "#c62828"}
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
    checked = claims[claims["inside"].notna()]
    if checked.empty:
        return "not disclosed", "no declared result has a workbench measurement of the same task"
    out = checked[checked["inside"] == False]  # noqa: E712 (a boolean column with NaN)
    text = "; ".join(f"{r.task} {r.metric}: claimed {r.claimed}, measured {r.measured} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                     for r in (out if len(out) else checked).itertuples())
    return ("contradicted" if len(out) else "disclosed"), text


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
    from workbench.models.model import Model
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
    frame = pd.DataFrame([{k: r[k] for k in ("field", "value", "source")} for r in rows],
                         columns=["field", "value", "source"])
    info = {"name": model.name, "kind": model.kind, "fingerprint_id": model.fingerprint_id,
            "architecture": model.architecture, "class_name": type(model.hf).__name__ if model.hf is not None else "",
            "weights_sha256": model.fingerprint.get("weights_sha256", ""), "licence": model.licence,
            "source": model.source, "folder": str(folder) if folder else None}
    return Documentation(frame, record(model, folder=info["folder"]), evaluations=evals, files=files,
                         measured=got, model_info=info)
