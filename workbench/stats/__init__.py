"""Honest statistics for probes and benchmarks: exact tests and intervals, BH, power.

Exact tests at every n (McNemar, sign-flip and paired permutation tests), exact Clopper-Pearson
intervals for proportions, bootstrap intervals only where n supports them (``MIN_N_BOOTSTRAP``),
and a stated minimum n for tests (``MIN_N``). ``benchmarks/stats_calibration.py`` checks them all.

>>> from workbench.stats import bootstrap_ci, mcnemar_exact, minimum_detectable_effect
>>> bootstrap_ci([1, 0, 1, 1] * 25, n_boot=200).estimate    # 100 items: MIN_N_BOOTSTRAP
0.75
"""
from workbench.stats.bootstrap import CI, bootstrap_ci, bootstrap_distribution, bootstrap_frame, summarise
from workbench.stats.compare import Comparable, compare, plot_comparison
from workbench.stats.inference import (benjamini_hochberg, holm, mcnemar_exact, minimum_detectable_effect,
                                       paired_bootstrap, paired_bootstrap_ci)
from workbench.stats.intervals import MIN_N, MIN_N_BOOTSTRAP, paired_proportion_ci, proportion_ci
from workbench.stats.metrics import Metric, columns_of, mean_metric
from workbench.stats.permutation import paired_permutation, sign_flip

__all__ = ["CI", "Comparable", "MIN_N", "MIN_N_BOOTSTRAP", "Metric", "benjamini_hochberg", "holm", "bootstrap_ci",
           "bootstrap_distribution", "bootstrap_frame", "columns_of", "compare", "mcnemar_exact", "mean_metric",
           "minimum_detectable_effect", "paired_bootstrap", "paired_bootstrap_ci", "paired_permutation",
           "paired_proportion_ci", "plot_comparison", "proportion_ci", "sign_flip", "summarise"]
