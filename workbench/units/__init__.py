"""Units of work: what a bias probe, a benchmark task and a training-data check have in common.

- :class:`UnitSpec` (``workbench.units.spec``): load, score, metrics, and what the runner needs
  to store, resume and rebuild a unit; :class:`UnitContext` what a run hands load and score;
- :func:`prepare_unit`, :func:`run_unit`, :func:`unit_provenance` (``workbench.units.run``): one
  preparation and one provenance for every unit;
- :class:`UnitResult` (``workbench.units.result``): the result of a unit without a result type of
  its own, and the three questions the runner asks of every result.

>>> from workbench.units import UnitSpec
>>> import workbench as wb
>>> wb.probes.ProbeSpec is UnitSpec
True
"""
from workbench.units.result import UnitResult, plot_summary
from workbench.units.run import PreparedUnit, prepare_unit, run_unit, unit_provenance
from workbench.units.spec import SkipLog, UnitContext, UnitSpec, hash_files, takes_context

__all__ = ["PreparedUnit", "SkipLog", "UnitContext", "UnitResult", "UnitSpec", "hash_files", "plot_summary",
           "prepare_unit", "run_unit", "takes_context", "unit_provenance"]
