"""Vision-language audits above scoring and inspection: the counterfactual image bias probe
(:mod:`workbench.vision.counterfactual`)."""
from workbench.vision.counterfactual import (ImageBiasResult, image_bias, load_pairs, load_social_counterfactuals,
                                             synthetic_counterfactuals)

__all__ = ["ImageBiasResult", "image_bias", "load_pairs", "load_social_counterfactuals", "synthetic_counterfactuals"]
