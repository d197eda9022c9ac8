"""How the model was made, part 1: training-data detection and benchmark contamination, with controls.

- :func:`membership` (``wb.membership``): membership-inference attacks beside a blind baseline;
- :func:`dataset_inference` (``wb.dataset_inference``): was a whole collection trained on? (Maini et al. 2024);
- :func:`contamination` (``wb.contamination``): benchmark contamination tests;
- :func:`check_unit` and :func:`register_check` (``wb.check_unit``, ``wb.register_check``): a
  check of your own, run, stored and resumed by ``wb.run`` like these (``docs/architecture.md``);
- :mod:`workbench.training_data.testbed`: fine-tune a copy of a model on known texts, so that
  membership and contamination are known and the methods can be checked against the truth.
"""
from workbench.training_data.checks import check_unit, register_check
from workbench.training_data.contamination import ContaminationResult, contamination
from workbench.training_data.dataset_inference import DatasetInferenceResult, dataset_inference
from workbench.training_data.membership import MembershipResult, membership

__all__ = ["ContaminationResult", "DatasetInferenceResult", "MembershipResult", "check_unit", "contamination",
           "dataset_inference", "membership", "register_check"]
