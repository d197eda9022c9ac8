"""The hidden checks of notebook 07, "Inside a language model, by hand": what each of its eleven
exercises' answers must be, computed here from the package's own results, out of the student's
sight (as nbgrader keeps hidden tests and ARENA keeps ``tests.py`` apart from the exercise cells).

The notebook's check cells only name their inputs, ``board.check(1, answer, model=model,
context=context, continuation=continuation)``; the expected value is computed by this module,
by a different route from the one the exercise asks for (the engine's scoring, a fresh capture,
the package's own lens, ablation, attribution, DLA, probe and SAE evaluation), and a wrong
answer's message does not reveal it. A student can read this file, as they can read nbgrader's
release or ARENA's tests: the point is that the check cell is not a recipe to copy.

>>> from workbench.course.inside_a_model import EXERCISES, scoreboard
>>> len(EXERCISES), [e.number for e in EXERCISES][:3]
(11, [1, 2, 3])
>>> board = scoreboard()
>>> board.exercise(1).inputs
('model', 'context', 'continuation')
>>> board.counts()
{'PASS': 0, 'FAIL': 0, 'OPEN': 11}
"""
from __future__ import annotations

from workbench.attribution.api import attribute
from workbench.course.checks import Exercise, Scoreboard
from workbench.inspect.capture import capture
from workbench.inspect.dla import direct_logit_attribution
from workbench.inspect.heads import head_scores
from workbench.inspect.lens import logit_lens
from workbench.inspect.ablation import ablate
from workbench.inspect.sae_analysis import evaluate_sae
from workbench.inspect.steering import steering_vector
from workbench.scoring.api import loglikelihood

NAME = "07 inside a language model"


def _logprob(model, context, continuation):
    return float(loglikelihood(model, [(context, continuation)])["logprob"][0])


def _resid_post(model, context, layer):
    return capture(model, [context], sites=["resid_post"], layers=[layer])["resid_post", layer][0].float().numpy()


def _lens_prob(model, context, continuation, layer):
    lens = logit_lens(model, context, targets=[continuation])
    row = lens[(lens.layer == layer) & (lens.position == lens.position.max())]
    return float(row["prob"].iloc[0])


def _induction(model, seq_len, n_seqs, layer):
    heads = head_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=0, layers=[layer]).to_frame()
    return heads[(heads.kind == "induction") & (heads.layer == layer)].sort_values("head")["score"].to_numpy()


def _ablation_effect(model, prompt, pair, layer, head):
    frame = ablate(model, prompt, pair, component="head", layers=[layer], progress=False).to_frame()
    return float(frame[(frame.layer == layer) & (frame.unit == head)]["effect"].iloc[0])


def _patching_normalized(patching, layer, position):
    frame = patching.to_frame()
    return float(frame[(frame.layer == layer) & (frame.position == position)]["normalized"].iloc[0])


def _steering(model, positive, negative, layer):
    return steering_vector(model, positive, negative, layer=layer).direction.float().numpy()


def _attribution_of_last(model, prompt, target):
    return float(attribute(model, prompt, target, random_check=False)["attribution"].iloc[-1])


def _dla_total(model, prompt, target, baseline):
    return float(direct_logit_attribution(model, prompt, target=target, baseline=baseline).blocks()["contribution"].sum())


def _probe_accuracy(probe, layer):
    return float(probe.summary().set_index("layer").loc[layer, "accuracy"])


def _fve(model, sae, corpus):
    return float(evaluate_sae(model, sae, corpus).summary()["fve"].iloc[0])


EXERCISES = (
    Exercise(1, "log P({continuation!r} | context)", _logprob, tol=1e-3,
             hint="sum log_softmax(logits)[i - 1, token_i] over the continuation's positions only"),
    Exercise(2, "resid_post = resid_pre + attn_out + mlp_out at layer {layer}", _resid_post, tol=1e-3,
             hint="add the three captured tensors; take text 0"),
    Exercise(3, "P({continuation!r}) at layer {layer} by the logit lens", _lens_prob, tol=1e-5,
             hint="softmax(lm_head(norm(resid_post[L] at the last position))), at the id of the word"),
    Exercise(4, "induction scores of layer {layer}", _induction, tol=1e-6,
             hint="A[:, :, q, q - seq_len + 1] for every q of the second copy, averaged"),
    Exercise(5, "effect of ablating L{layer} H{head}", _ablation_effect, tol=1e-3,
             hint="metric inside the `with` block minus metric outside"),
    Exercise(6, "normalised patching effect at layer {layer}, position {position}", _patching_normalized, tol=1e-3,
             hint="(value - corrupted) / (clean - corrupted)"),
    Exercise(7, "steering vector at layer {layer}", _steering, tol=1e-3,
             hint="mask out padding: sum(x * mask) / sum(mask) per text, then the mean over texts"),
    Exercise(8, "feature-ablation attribution of the last token", _attribution_of_last, tol=1e-3,
             hint="replace the last id by the baseline id and compare log P(target) at the last position"),
    Exercise(9, "the logit difference the blocks add up to", _dla_total, tol=1e-2,
             hint="logits[last position] at the target minus at the baseline"),
    Exercise(10, "probe accuracy at layer {layer}", _probe_accuracy, tol=0.03,
             hint="the fraction of texts classified right across the 5 folds"),
    Exercise(11, "fraction of variance explained", _fve, tol=1e-3,
             hint="1 - ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()"),
)


def scoreboard(strict=None) -> Scoreboard:
    """A fresh scoreboard of notebook 07's eleven exercises (every one OPEN)."""
    return Scoreboard(EXERCISES, name=NAME, strict=strict)
