"""Honest statistics for probes and benchmarks: bootstrap CIs, paired tests, BH, power.

>>> from workbench.stats import bootstrap_ci, mcnemar_exact, minimum_detectable_effect
>>> bootstrap_ci([1, 0, 1, 1], n_boot=200).estimate
0.75
"""
from workbench.stats.bootstrap import CI, bootstrap_ci, bootstrap_distribution, bootstrap_frame, summarise
from workbench.stats.compare import Comparable, compare, plot_comparison
from workbench.stats.inference import (benjamini_hochberg, mcnemar_exact, minimum_detectable_effect,
                                       paired_bootstrap)
from workbench.stats.metrics import Metric, columns_of, mean_metric

__all__ = ["CI", "Comparable", "Metric", "benjamini_hochberg", "bootstrap_ci", "bootstrap_distribution",
           "bootstrap_frame", "columns_of", "compare", "mcnemar_exact", "mean_metric",
           "minimum_detectable_effect", "paired_bootstrap", "plot_comparison", "summarise"]
