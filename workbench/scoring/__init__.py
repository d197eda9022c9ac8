"""The scoring engine: the one hot path every probe and benchmark uses."""
from workbench.scoring.api import (embed, fill_mask, generate, loglikelihood, perplexity,
                                   pseudo_loglikelihood)
from workbench.engine.masked import shared_token_positions

__all__ = ["loglikelihood", "perplexity", "pseudo_loglikelihood", "fill_mask", "generate", "embed",
           "shared_token_positions"]
