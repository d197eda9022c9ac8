"""Bias probes with honest statistics: each probe is a spec (data + scoring rule + metrics) run
through the scoring engine; results carry per-item rows, bootstrap CIs and provenance.

>>> import workbench as wb
>>> sorted(wb.list_probes().probe)[:3]
['bbq', 'bbq_generative', 'bold']
"""
from workbench.probes.api import list_probes, run_probe

__all__ = ["list_probes", "run_probe"]
