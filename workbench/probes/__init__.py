"""Bias probes with honest statistics: each probe is a spec (data + scoring rule + metrics) run
through the scoring engine; results carry per-item rows, bootstrap CIs and provenance.

>>> import workbench as wb
>>> sorted(wb.list_probes().probe)[:3]
['bbq', 'bbq_generative', 'bold']
"""
from workbench.probes.api import get_spec, list_probes, register_probe, run_probe
from workbench.probes.base import ProbeContext, ProbeResult, ProbeSpec, SkipLog

__all__ = ["ProbeContext", "ProbeResult", "ProbeSpec", "SkipLog", "get_spec", "list_probes", "register_probe", "run_probe"]
