"""Activation inspection on the unmodified Hugging Face model: capture, logit lens, attention,
ablation, patching, steering, representation similarity, linear probes, direct logit
attribution, head-type scores and sparse-autoencoder features, all through forward hooks.
Capture, the logit lens, direct logit attribution and steering also run on a GGUF through
llama.cpp (its compute graph and control vectors), and ``wb.conformance``
(:mod:`workbench.inspect.conformance`) compares one network across backends and precisions.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> wb.inspect.verify(m).ok
True
"""
from workbench.inspect.ablation import AblationResult, ablate, ablated_heads
from workbench.inspect.attention import AttentionResult, attention
from workbench.inspect.cache import ActivationCache
from workbench.inspect.capture import capture
from workbench.inspect.generation import capture_generation
from workbench.inspect.dla import DLAResult, direct_logit_attribution
from workbench.inspect.heads import HeadScoresResult, head_scores
from workbench.inspect.lens import logit_lens, plot_logit_lens
from workbench.inspect.metrics import InterventionMetric, Logprob, LogprobDiff, Metric
from workbench.inspect.patching import PatchingResult, patch
from workbench.inspect.linear_probe import ProbeResult, ProbingResult, linear_probe, probe
from workbench.inspect.sae import SAE
from workbench.inspect.sae_analysis import (FeatureExamplesResult, SAEEvalResult, ablate_feature, evaluate_sae,
                                            splice_sae, steer_feature, top_activating)
from workbench.inspect.sae_load import load_sae
from workbench.inspect.sae_train import train_sae
from workbench.inspect.similarity import CKAResult, cka, linear_cka
from workbench.inspect.sites import EDITABLE, SITES, adapter
from workbench.inspect.steering import SteeringVector, steer, steering_vector
from workbench.inspect.stream import ShardedCache, capture_stream
from workbench.inspect.verify import VerifyResult, verify

__all__ = ["AblationResult", "ActivationCache", "AttentionResult", "CKAResult", "DLAResult", "EDITABLE",
           "FeatureExamplesResult", "HeadScoresResult", "InterventionMetric", "Logprob", "LogprobDiff", "Metric",
           "PatchingResult", "ProbeResult", "ProbingResult", "SAE", "SAEEvalResult", "SITES", "ShardedCache",
           "SteeringVector", "VerifyResult", "ablate", "ablate_feature", "ablated_heads", "adapter",
           "attention", "capture", "capture_generation", "capture_stream", "cka", "direct_logit_attribution", "evaluate_sae", "head_scores",
           "linear_cka", "load_sae", "logit_lens", "patch", "plot_logit_lens", "probe", "splice_sae",
           "steer", "steer_feature", "steering_vector", "top_activating", "train_sae", "verify", "linear_probe"]
