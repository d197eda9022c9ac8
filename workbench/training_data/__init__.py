"""How the model was made, part 1: training-data detection and benchmark contamination, with controls.

- :func:`membership` (``wb.membership``): membership-inference attacks beside a blind baseline;
- :func:`dataset_inference` (``wb.dataset_inference``): was a whole collection trained on? (Maini et al. 2024);
- :func:`contamination` (``wb.contamination``): benchmark contamination tests;
- :mod:`workbench.training_data.testbed`: fine-tune a copy of a model on known texts, so that
  membership and contamination are known and the methods can be checked against the truth.
"""
from workbench.training_data.contamination import ContaminationResult, contamination
from workbench.training_data.dataset_inference import DatasetInferenceResult, dataset_inference
from workbench.training_data.membership import MembershipResult, membership

__all__ = ["ContaminationResult", "DatasetInferenceResult", "MembershipResult", "contamination", "dataset_inference",
           "membership"]
