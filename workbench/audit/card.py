"""Audit cards: the machine-readable record (JSON) and the human-readable report (HTML) of a
published audit.

An audit notebook fills an :class:`AuditCard` as it goes (models with fingerprints and licences,
the fidelity check, task hashes, result summaries, limitations) and saves it. :func:`build_report`
then executes the notebook headless (nbconvert), and writes the executed notebook, the card as
JSON, and one self-contained HTML page (card first, then the notebook) that needs no internet.

>>> import workbench as wb
>>> from workbench.audit import AuditCard
>>> card = AuditCard("Gender bias in small open models", question="Do they prefer stereotypes?")
>>> model = wb.testing.tiny_model("gpt2")
>>> card.add_model(model)
>>> card.add_limitation("CrowS-Pairs", "Noisy pairs; US-centric categories.")
>>> path = card.save("/tmp/example.card.json")                    # doctest: +SKIP

From the command line (``workbench audit``) the flagship audit runs headless
(:mod:`workbench.audit.command`; the notebook runner is :mod:`workbench.audit.notebook`).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import pandas as pd

from workbench.audit.findings import adjust_findings, finding, headline
from workbench.audit.report import card_html
from workbench.errors import InvalidInputError
from workbench.portable import scrub
from workbench.versions import AUDIT_PACKAGES, versions

CARD_ENV = "WORKBENCH_AUDIT_CARD"  # build_report tells the notebook where to save its card
SCHEMA = "workbench.audit_card/1"


def _jsonable(value):
    """Plain JSON types for anything a result or provenance may hold (numpy, pandas, paths)."""
    if isinstance(value, pd.DataFrame):
        if not isinstance(value.index, pd.RangeIndex):  # a named index (e.g. a category) is data
            value = value.reset_index()
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if isinstance(value, pd.Series):
        return _jsonable(value.to_frame().reset_index())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy / torch scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _frame_of(obj) -> pd.DataFrame:
    """The table to record for a result: its summary, a DataFrame as is, or a fidelity report."""
    if isinstance(obj, pd.DataFrame):
        return obj
    for attr in ("summary", "table", "to_frame", "report"):
        got = getattr(obj, attr, None)
        got = got() if callable(got) else got
        if isinstance(got, pd.DataFrame):
            return got
    raise InvalidInputError(f"cannot record a {type(obj).__name__}: pass a DataFrame or a result "
                            "with .summary(), .table() or .to_frame()")


class AuditCard:
    """What an audit claims and what it rests on, as data. Fill it in the notebook, then ``save()``."""

    def __init__(self, title: str, question: str = "", authors: str = "", method: str = ""):
        if not title or not str(title).strip():
            raise InvalidInputError("an audit card needs a title, e.g. AuditCard('Bias in small LMs')")
        self.data = {"schema": SCHEMA, "title": title, "question": question, "authors": authors,
                     "method": method, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "versions": versions(*AUDIT_PACKAGES, platform=True), "models": [], "fidelity": [], "tasks": [],
                     "results": [], "findings": [], "limitations": [], "report": {},
                     "made": {"documentation": [], "lineage": [], "training_data": []}}

    # --- filling the card -------------------------------------------------------------------
    def add_model(self, model) -> None:
        """Record a loaded model: its name, full fingerprint, licence and source."""
        self.data["models"].append(_jsonable({
            "name": model.name, "fingerprint_id": model.fingerprint_id, "licence": model.licence,
            "source": model.source, "architecture": model.architecture, "kind": model.kind,
            "fingerprint": model.fingerprint}))

    def add_fidelity(self, model, check) -> None:
        """Record the inspection fidelity check (``wb.inspect.verify(model)``): ``.ok`` and its table."""
        if not hasattr(check, "ok"):
            raise InvalidInputError("add_fidelity expects the object returned by wb.inspect.verify(model)")
        self.data["fidelity"].append({"model": model.name, "fingerprint_id": model.fingerprint_id,
                                      "ok": bool(check.ok), "checks": _jsonable(_frame_of(check))})

    def add_task(self, name: str, hash: str, **details) -> None:
        """Record a task or probe by its content hash (data + template + scoring options)."""
        if not hash:
            raise InvalidInputError(f"task {name!r} has no hash: pass the hash from the result's provenance")
        self.data["tasks"].append(_jsonable({"name": name, "hash": hash, **details}))

    def add_result(self, name: str, result, note: str = "") -> None:
        """Record a result's summary table (with intervals) and its provenance. A probe result's
        data hash (``provenance["data"]["sha256"]``) and a benchmark run's task hashes
        (``provenance["runs"]``) are recorded as tasks too."""
        provenance = _jsonable(getattr(result, "provenance", {}) or {})
        self.data["results"].append({"name": name, "note": note, "table": _jsonable(_frame_of(result)),
                                     "provenance": provenance})
        if not isinstance(provenance, dict):
            return
        data = provenance.get("data")
        if isinstance(data, dict) and data.get("sha256"):  # a bias probe's data set
            self._task_once(provenance.get("probe", name), data["sha256"], licence=data.get("licence"),
                            limit=data.get("limit"), n_scored=data.get("n_scored"), options=provenance.get("options"))
        for run in provenance.get("runs") or []:  # benchmark runner cells
            if isinstance(run, dict) and run.get("task_hash"):
                self._task_once(run.get("task"), run["task_hash"])

    def add_finding(self, name: str, res_a=None, res_b=None, metric: str | None = None, *,
                    comparison: pd.DataFrame | None = None, scale: float = 1.0, unit: str = "",
                    entry: dict | None = None) -> dict:
        """Record one headline finding: ``metric`` of two probe results of the same probe on the
        same items (model A, model B, their paired difference, test, n, minimum detectable
        effect, and the same per category). The report opens with these, one row each, with
        p-values adjusted across the findings. For other results build the ``entry`` with
        :mod:`workbench.audit.findings` (``finding_from_frames``, ``finding_from_bench``)."""
        if entry is None:
            if res_a is None or res_b is None or not metric:
                raise InvalidInputError("add_finding needs two results and a metric "
                                        "(add_finding('CrowS-Pairs', res_a, res_b, 'pct_stereotype')) or entry=")
            entry = finding(name, res_a, res_b, metric, comparison=comparison, scale=scale, unit=unit)
        entry = _jsonable(dict(entry, name=name))
        # a new row joins the family: every row's diff.p_adjusted is Holm across all of them again
        adjust_findings(self.data.setdefault("findings", []) + [entry])
        self.data["findings"].append(entry)
        return entry

    def findings(self) -> pd.DataFrame:
        """The headline table: one row per finding, p-values adjusted across them (Holm)."""
        return headline(self.data.get("findings") or [])

    def _task_once(self, name, hash, **details) -> None:
        if not any(t["name"] == name and t["hash"] == hash for t in self.data["tasks"]):
            self.add_task(name, hash, **details)

    # --- how the models were made -------------------------------------------------------------
    def _made(self) -> dict:
        return self.data.setdefault("made", {"documentation": [], "lineage": [], "training_data": []})

    def add_documentation(self, doc, claims: pd.DataFrame | None = None) -> None:
        """Record a model's documentation (``wb.documentation(model)``): what it declares with the
        sources, the transparency indicators and, given ``doc.claims(...)``, claims against
        measurements. The ML-BOM is not stored: ``doc.to_cyclonedx()`` rebuilds it."""
        if not (hasattr(doc, "indicators") and hasattr(doc, "model_info")):
            raise InvalidInputError("add_documentation expects the object returned by wb.documentation(model)")
        frame = doc.to_frame()
        self._made()["documentation"].append(_jsonable({
            "model": doc.model_info["name"], "fingerprint_id": doc.model_info["fingerprint_id"],
            "indicators": doc.indicators(claims),
            "fields": frame.assign(value=frame.value.map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v)),
            "claims": claims if claims is not None else [], "provenance": doc.provenance}))

    def add_lineage(self, lineage) -> None:
        """Record ``wb.lineage(a, b)``: its evidence table and verdict."""
        if not hasattr(lineage, "verdict"):
            raise InvalidInputError("add_lineage expects the object returned by wb.lineage(model_a, model_b)")
        prov = lineage.provenance
        self._made()["lineage"].append(_jsonable({
            "model_a": prov["model_a"]["name"], "model_b": prov["model_b"]["name"], "verdict": lineage.verdict,
            "table": lineage.summary(), "provenance": prov}))

    def add_training_data(self, name: str, result, note: str = "") -> None:
        """Record a training-data result (membership inference, contamination, dataset inference):
        its ``summary()`` and, where it has them, its ``findings()``."""
        findings = result.findings() if callable(getattr(result, "findings", None)) else None
        self._made()["training_data"].append(_jsonable({
            "name": name, "note": note, "table": _frame_of(result),
            "findings": findings if isinstance(findings, pd.DataFrame) else [],
            "provenance": getattr(result, "provenance", {}) or {}}))

    def add_limitation(self, subject: str, text: str) -> None:
        self.data["limitations"].append({"subject": subject, "text": text})

    # --- reading and writing ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The card as plain JSON data, every absolute path made relative to a named root
        (:func:`workbench.portable.portable_path`), except ``audit.rerun``: the audit file that
        ran with its real paths, which ``workbench audit --from-card`` runs again. Each finding's ``diff.p_adjusted`` is Holm
        across all the findings (as in :meth:`findings`), whoever filled ``data``."""
        data = json.loads(json.dumps(self.data, allow_nan=False, default=str))
        adjust_findings(data.get("findings") or [])
        out = scrub(data)
        rerun = (data.get("audit") or {}).get("rerun")
        if rerun is not None:   # the one field kept as this machine wrote it: --from-card runs it
            out["audit"]["rerun"] = rerun
        return out

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the JSON card: to ``path``, else where ``build_report`` asked (env
        ``WORKBENCH_AUDIT_CARD``), else ``audit_card.json`` in the current folder."""
        path = Path(path or os.environ.get(CARD_ENV) or "audit_card.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False, allow_nan=False))
        tmp.replace(path)  # a reader never sees half a card
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AuditCard":
        data = json.loads(Path(path).read_text())
        if data.get("schema") != SCHEMA:
            raise InvalidInputError(f"{path} is not an audit card (schema {data.get('schema')!r}, "
                                    f"expected {SCHEMA!r})")
        card = cls.__new__(cls)
        card.data = data
        return card

    def to_html(self, page: bool = False) -> str:
        """The card as HTML: findings first, then the appendix (``page=True``: a whole page)."""
        return card_html(self.to_dict(), page=page)

    # --- read like the JSON it saves: card["findings"], "deployment" in card, card.get("plan") ---
    def __getitem__(self, key: str):
        """A top-level field of the card's data, as in ``audit_card.json`` (``card["findings"]``).

        >>> card = AuditCard("t")
        >>> card["title"], "findings" in card, card.get("plan") is None
        ('t', True, True)
        """
        if key not in self.data:
            raise KeyError(f"the card has no field {key!r}; it has {sorted(self.data)}")
        return self.data[key]

    def __contains__(self, key) -> bool:
        return key in self.data

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def keys(self):
        return self.data.keys()

    def _repr_html_(self) -> str:
        return self.to_html()
