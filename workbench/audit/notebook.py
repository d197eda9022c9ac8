"""Running an audit notebook headless: :func:`build_report` executes it (nbconvert), with each
section and printed line shown on the terminal as it runs, and writes the executed notebook, the
card as JSON and one self-contained HTML page rendered from the card."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CellExecutionError

import workbench.errors as errors
from workbench.audit.card import CARD_ENV, AuditCard
from workbench.audit.progress import PROGRESS_ENV, ProgressExecutor
from workbench.errors import InvalidInputError, WorkbenchError


@dataclass
class Report:
    html: Path
    card: Path
    notebook: Path
    seconds: float


def build_report(notebook: str | os.PathLike, out_dir: str | os.PathLike, timeout: int = 3600,
                 kernel_name: str = "python3", progress: bool = True) -> Report:
    """Execute ``notebook`` headless and write ``report.html`` (self-contained, offline: the
    findings first, then an appendix, all rendered from the card), ``audit_card.json`` and the
    executed ``notebook.ipynb`` into ``out_dir``. The notebook must save an :class:`AuditCard`
    (``card.save()`` with no path goes where this function asks). With ``progress``, each
    section and each line the notebook prints is shown on the terminal as it runs."""
    notebook, out_dir = Path(notebook).resolve(), Path(out_dir).resolve()
    if not notebook.is_file():
        raise InvalidInputError(f"notebook not found: {notebook} (give the path to an .ipynb file)")
    out_dir.mkdir(parents=True, exist_ok=True)
    card_path, executed_path = out_dir / "audit_card.json", out_dir / "notebook.ipynb"
    card_path.unlink(missing_ok=True)  # never report a card left over from an earlier run
    nb = nbformat.read(notebook, as_version=4)
    source_sha = hashlib.sha256(notebook.read_bytes()).hexdigest()
    saved = {k: os.environ.get(k) for k in (CARD_ENV, PROGRESS_ENV)}
    start = time.perf_counter()
    os.environ[CARD_ENV] = str(card_path)  # the kernel inherits this environment
    os.environ[PROGRESS_ENV] = "0"         # no progress bars frozen into the saved notebook
    try:
        ProgressExecutor(stream=None if progress else io.StringIO(), timeout=timeout,
                         kernel_name=kernel_name).preprocess(nb, {"metadata": {"path": str(notebook.parent)}})
    except CellExecutionError as err:
        nbformat.write(nb, executed_path)
        raise WorkbenchError(f"{notebook.name} failed while running headless; the partly executed "
                             f"notebook is {executed_path}. The error:\n{err}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    nbformat.write(nb, executed_path)
    if not card_path.is_file():
        raise WorkbenchError(f"{notebook.name} ran but saved no audit card: end it with "
                             "`card.save()` (an AuditCard from workbench.audit)")
    card = AuditCard.load(card_path)
    card.data["report"] = {"notebook": notebook.name, "notebook_sha256": source_sha,
                           "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "execution_seconds": round(seconds, 2), "html": "report.html",
                           "executed_notebook": executed_path.name}
    card.save(card_path)
    html_path = out_dir / "report.html"
    html_path.write_text(card.to_html(page=True))
    return Report(html=html_path, card=card_path, notebook=executed_path, seconds=seconds)


# ---- an audit file through the audit notebook (papermill) ------------------------------------------
# the package's copy of audits/flagship_audit.ipynb (notebooks/build.py writes both from
# audits/src/flagship_audit.py): found from an installed wheel too, where audits/ is not
AUDIT_NOTEBOOK = Path(__file__).resolve().parent / "flagship_audit.ipynb"


def notebook_runner_missing(notebook: str | os.PathLike | None = None) -> str | None:
    """Why the audit notebook cannot run here (its file or papermill missing), or None."""
    import importlib.util
    path = Path(notebook or AUDIT_NOTEBOOK)
    if not path.is_file():
        return f"the audit notebook is not installed ({path.name} missing beside workbench/audit/)"
    if importlib.util.find_spec("papermill") is None:
        return "papermill is not installed (pip install papermill)"
    return None


def run_audit_notebook(audit_text: str, out_dir: str | os.PathLike, notebook: str | os.PathLike | None = None,
                       timeout: int | None = None, stream=None, cwd: str | os.PathLike | None = None,
                       source: str | None = None) -> Report:
    """Execute the audit notebook headless with papermill, the audit file injected after its
    ``parameters`` cell (``audit_file`` = the YAML text that runs, ``audit_source`` = the file as
    given (``source``; ``""``: the audit was built from arguments, no file), ``out`` = ``out_dir``), the audit's lines echoed to ``stream`` as they come. Writes the executed ``notebook.ipynb`` into
    ``out_dir`` (also when a cell fails: then it is the partly executed notebook), adds how it
    ran to the card the audit wrote, and renders ``report.html`` again from it."""
    import papermill as pm  # optional (not a dependency of the package): imported where it runs
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook or AUDIT_NOTEBOOK).resolve()
    if not notebook.is_file():
        raise InvalidInputError(f"the audit notebook is missing: {notebook} (run python notebooks/build.py)")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    executed, card_path = out_dir / "notebook.ipynb", out_dir / "audit_card.json"
    card_path.unlink(missing_ok=True)  # never report a card left over from an earlier run
    saved = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "0"     # the kernel inherits it: no progress bar frozen into the notebook
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters={"audit_file": audit_text, "out": str(out_dir),
                                                                       "audit_source": source},
                            kernel_name="python3", progress_bar=False, log_output=False,
                            stdout_file=stream or sys.stdout, cwd=str(cwd or os.getcwd()),
                            execution_timeout=timeout, extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as err:
        kind = getattr(errors, err.ename, None)
        message = f"{err.evalue} (the partly executed notebook is {executed})"
        if isinstance(kind, type) and issubclass(kind, WorkbenchError):
            raise kind(message) from None
        raise WorkbenchError(f"the audit failed in its notebook with {err.ename}: {message}") from None
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = saved
    seconds = time.perf_counter() - start
    if not card_path.is_file():
        raise WorkbenchError(f"{notebook.name} ran but wrote no audit card in {out_dir}")
    card = AuditCard.load(card_path)
    card.data["report"] = {**(card.data.get("report") or {}), "notebook": notebook.name,
                           "notebook_sha256": hashlib.sha256(notebook.read_bytes()).hexdigest(),
                           "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "execution_seconds": round(seconds, 2), "executed_notebook": executed.name,
                           "runner": "papermill (audit file injected after the parameters cell)"}
    card.save(card_path)
    html_path = out_dir / "report.html"
    html_path.write_text(card.to_html(page=True))
    return Report(html=html_path, card=card_path, notebook=executed, seconds=seconds)
