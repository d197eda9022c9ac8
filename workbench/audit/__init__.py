"""Audits: the card (the machine-readable record of an audit), its findings (paired differences
with honest intervals, read without over-claiming), the report (one self-contained HTML page
rendered from the card, Jinja2 templates in ``templates/``), its figures, the notebook runner
that executes an audit headless with progress on the terminal, and the ``workbench audit``
command (:mod:`workbench.audit.command`; the CLI imports this package, never the reverse).

>>> from workbench.audit import AuditCard
>>> card = AuditCard("Gender bias in small open models", question="Do they prefer stereotypes?")
>>> card.data["title"]
'Gender bias in small open models'
"""
from workbench.audit.card import CARD_ENV, AuditCard
from workbench.audit.findings import finding, finding_from_bench, finding_from_frames, headline
from workbench.audit.notebook import Report, build_report

__all__ = ["CARD_ENV", "AuditCard", "Report", "build_report", "finding", "finding_from_bench", "finding_from_frames",
           "headline"]
