"""Audits: one audit of 2 to 10 models from one command or one call, and what it publishes.

``wb.audit(models=[...], probes=[...], tasks=[...], limit=N, out=DIR)`` (this package is
callable: ``wb.audit`` is both the package and the call) runs an audit file
(:mod:`workbench.audit.spec`; the default is the flagship audit, ``flagship.yaml``) through
:mod:`workbench.audit.run`: the plan (:mod:`~workbench.audit.plan`, :mod:`~workbench.audit.power`),
every probe and task through the runner's store (:mod:`~workbench.audit.grid`), the findings
for N models (:mod:`~workbench.audit.findings`), the deployment flips
(:mod:`~workbench.audit.deployment`) and the published card, report and ML-BOM
(:mod:`~workbench.audit.outputs`, :mod:`~workbench.audit.card`, :mod:`~workbench.audit.report`,
``templates/``). :mod:`~workbench.audit.notebook` runs the audit notebook headless (papermill,
the audit file as its parameter) and :mod:`~workbench.audit.command` is ``workbench audit``
(the CLI imports this package, never the reverse).

>>> from workbench.audit import AuditCard
>>> card = AuditCard("Gender bias in small open models", question="Do they prefer stereotypes?")
>>> card.data["title"]
'Gender bias in small open models'
"""
import sys
import types

from workbench.audit.card import CARD_ENV, AuditCard
from workbench.audit.findings import finding, finding_from_bench, finding_from_frames, headline
from workbench.audit.notebook import Report, build_report

__all__ = ["CARD_ENV", "AuditCard", "Report", "audit", "build_report", "finding", "finding_from_bench",
           "finding_from_frames", "headline"]


def audit(*args, **kwargs):
    """:func:`workbench.audit.run.audit` (see there)."""
    from workbench.audit.run import audit as run
    return run(*args, **kwargs)


class _CallablePackage(types.ModuleType):
    """``wb.audit`` names this package once it is imported (Python binds a subpackage on its
    parent) and the public call ``wb.audit(...)``: calling the package runs the audit."""

    def __call__(self, *args, **kwargs):
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
