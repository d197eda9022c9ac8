"""``wb.conformance``: is a deployed model the same network as a reference, and where does
quantisation change its computation?

Give two or more loaded models that should be one network through different backends or
precisions (Hugging Face float32 and bfloat16, GGUF F16 / Q8_0 / Q4_K_M on llama.cpp, a served
model) and some texts. Against the first (the reference), on the *reference's token ids*:

* per layer (where both backends capture): cosine and relative error of ``resid_post``;
* next-token distributions (where both give full ones): mean KL(reference || model) and top-1
  agreement over every position;
* the deployment path (``score_tokens``, as ``wb.loglikelihood`` runs it): each scored token's
  log-prob difference and each text's log-likelihood difference;
* what numbers do not show: whether the model's tokenizer makes the same ids for each text, and
  whether the chat prompt it renders is the reference's (with the first differing character);
  for a GGUF on llama.cpp also what llama.cpp's own renderer would send (``llamacpp_renderer``:
  llama-cli and llama-server without ``--jinja`` recognise the embedded template instead of
  running it; information, not part of the verdict, since the workbench runs the template);
* a verdict per model (:mod:`workbench.inspect.conformance_verdict`).

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> ref = tiny_model("llama")
>>> res = wb.conformance([ref, ref], ["The cat sat on the mat.", "A dog ran."])
>>> res.summary()[["next_token_kl", "top1_agreement", "verdict"]].values.tolist()
[[0.0, 1.0, 'conforms']]
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from workbench.backends.llamacpp_gguf import native_chat
from workbench.errors import InvalidInputError, ServerError, WorkbenchError
from workbench.inspect.capture import capture, encode
from workbench.inspect.conformance_verdict import (Tolerance, describe_difference, judge, render_chat,
                                                   token_difference)
from workbench.models.model import Model
from workbench.provenance import model_name, record
from workbench.results import Result
from workbench.validate import BOOL, Optional, check_context, check_texts, checked

CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _can_capture(model) -> bool:
    return model.backend.supports("hooks") or model.backend.supports("capture")


def _vocab(model) -> int | None:
    cfg = model.config
    n = getattr(getattr(cfg, "text_config", None) or cfg, "vocab_size", None)
    return int(n) if isinstance(n, int) else None


def _ids(model, text: str, bos_id: int | None) -> list[int]:
    ids = encode(model.tokenizer, text)
    return ([bos_id] + ids) if bos_id is not None and (not ids or ids[0] != bos_id) else ids


class _Layers:
    """Running sums of one model's resid_post against the reference, per layer."""

    def __init__(self):
        self.err2, self.ref2, self.cos, self.n, self.worst = {}, {}, {}, {}, {}

    def add(self, layer: int, ref: torch.Tensor, x: torch.Tensor) -> None:
        ref, x = ref.double(), x.double()
        d2, r2 = ((x - ref) ** 2).sum(-1), (ref ** 2).sum(-1)
        cos = torch.nn.functional.cosine_similarity(x, ref, dim=-1)
        self.err2[layer] = self.err2.get(layer, 0.0) + float(d2.sum())
        self.ref2[layer] = self.ref2.get(layer, 0.0) + float(r2.sum())
        self.cos[layer] = self.cos.get(layer, 0.0) + float(cos.sum())
        self.n[layer] = self.n.get(layer, 0) + len(cos)
        self.worst[layer] = max(self.worst.get(layer, 0.0), float((d2.sqrt() / r2.sqrt().clamp_min(1e-30)).max()))

    def rows(self, name: str) -> list[dict]:
        return [{"model": name, "layer": L, "cosine": self.cos[L] / self.n[L],
                 "rel_error": (self.err2[L] / self.ref2[L]) ** 0.5 if self.ref2[L] else float("nan"),
                 "rel_error_max_token": self.worst[L], "n_tokens": self.n[L]} for L in sorted(self.n)]


def _capture(model, ids: list[int], layers: bool) -> dict:
    sites = ["resid_post", "logits"] if layers else ["logits"]
    c = capture(model, {"input_ids": torch.tensor([ids])}, sites=sites, progress=False)
    out = {"logp": torch.log_softmax(c["logits"][0].double(), -1)}
    if layers:
        out["resid"] = {L: c["resid_post", L][0] for L in c.layers("resid_post")}
    return out


def _score(model, rows: list[list[int]], k: int):
    """Per text the log-probs and greedy flags of tokens k.. given the ones before, through the
    backend's scoring path; or the error that stopped it."""
    try:
        if not model.backend.supports("token_logprobs"):
            raise model.backend._missing("token_logprobs")
        out = model.backend.score_tokens(model, [(r[:k], r[k:]) for r in rows], token_budget=4096, progress=False)
        lps = [np.asarray(o["token_logprobs"], dtype=float) for o in out]
        if any(len(lp) != len(r) - k or not np.isfinite(lp).all() for lp, r in zip(lps, rows)):
            raise ServerError("the answer holds missing or non-finite log-probs for prompt tokens")
        return lps, [np.asarray(o["greedy"], dtype=bool) for o in out], None
    except (ServerError, WorkbenchError) as e:
        return None, None, f"{type(e).__name__}: {e}"


@checked(progress=Optional(BOOL))
def conformance(models, texts, chat=None, tolerance: Tolerance | None = None, progress: bool | None = None):
    """Compare ``models[1:]`` with ``models[0]`` on ``texts`` (see the module docstring).

    ``chat``: the messages whose rendered chat prompts are compared (default: one user turn);
    ``tolerance``: the verdict's bounds (:class:`~workbench.inspect.conformance_verdict.Tolerance`).
    Returns a :class:`ConformanceResult`: ``.summary()`` one row per compared model,
    ``.layers()`` per model and layer, ``.requests()`` per model and text, ``.chat()`` the
    rendered prompts, ``.plot()`` the per-layer relative error.
    """
    if isinstance(models, Model) or not isinstance(models, (list, tuple)) or len(models) < 2:
        raise InvalidInputError("models must be a list of two or more loaded models (the first is the reference)")
    bad = [i for i, m in enumerate(models) if not isinstance(m, Model)]
    if bad:
        raise InvalidInputError(f"models[{bad[0]}] is a {type(models[bad[0]]).__name__}, not a loaded model "
                                "(wb.load_model)")
    texts = check_texts(texts, "conformance")
    if not texts:
        raise InvalidInputError("conformance needs at least one text")
    tol = tolerance or Tolerance()
    if not isinstance(tol, Tolerance):
        raise InvalidInputError(f"tolerance must be a workbench.inspect.conformance_verdict.Tolerance, got {tol!r}")
    chat = CHAT if chat is None else chat
    ref = models[0]
    # a server that echoes log-probs only after a BOS token: every model gets the BOS, so all compare alike
    bos_only = any(getattr(m.backend, "bos_only", False) for m in models)
    bos_id = getattr(ref.tokenizer, "bos_token_id", None) if bos_only else None
    if bos_only and bos_id is None:
        raise InvalidInputError(f"a served model scores prompts only after a BOS token, but {ref.name}'s tokenizer has "
                                "none; compare without that server")
    k = 2 if bos_id is not None else 1  # the first scored token (that server echoes nothing for the one after BOS)
    rows = [_ids(ref, t, bos_id) for t in texts]
    for i, r in enumerate(rows):
        if len(r) <= k:
            raise InvalidInputError(f"text {i} is {len(r)} token(s) for {ref.name}: give texts of at least {k + 1} tokens")
        for m in models:
            check_context(m, len(r), f"text {i} of conformance", "Shorten the text.")
    return _compare(models, texts, rows, k, chat, tol, bos_id, progress)


def _compare(models, texts, rows, k, chat, tol, bos_id, progress):
    from tqdm.auto import tqdm
    ref, others = models[0], list(enumerate(models))[1:]
    ref_chat, ref_chat_how = render_chat(ref, chat)
    ref_lp, ref_greedy, ref_err = _score(ref, rows, k)
    if ref_err:
        raise InvalidInputError(f"the reference {ref.name} cannot score the texts ({ref_err}); put a model that "
                                "can first")
    stats = {j: {"kl": [], "top1": [], "layers": _Layers(), "layer_note": None} for j, _ in others}
    top_id = max(max(r) for r in rows)
    for j, m in others:  # the reference's ids must exist in the model's embeddings to be run at all
        if _vocab(m) is not None and top_id >= _vocab(m):
            stats[j]["skip"] = (f"the reference's token id {top_id} is outside {m.name}'s vocabulary of {_vocab(m)}: "
                                "not run")
    show = progress if progress is not None else len(texts) * len(models) > 8
    for i in tqdm(range(len(rows)), desc="conformance", disable=not show, leave=False):
        ref_cap = _capture(ref, rows[i], layers=True) if _can_capture(ref) else None
        for j, m in others:
            if ref_cap is None or not _can_capture(m) or "skip" in stats[j]:
                continue
            cap = _capture(m, rows[i], layers=True)
            s = stats[j]
            if cap["logp"].shape != ref_cap["logp"].shape:
                s["layer_note"] = f"vocabulary of {cap['logp'].shape[-1]} vs {ref_cap['logp'].shape[-1]}: not compared"
                continue
            p, q = ref_cap["logp"][k - 1:-1], cap["logp"][k - 1:-1]  # positions whose next token is scored
            s["kl"].append((p.exp() * (p - q)).sum(-1).clamp_min(0).numpy())
            s["top1"].append((p.argmax(-1) == q.argmax(-1)).numpy())
            if set(cap["resid"]) == set(ref_cap["resid"]):
                for L, x in cap["resid"].items():
                    s["layers"].add(L, ref_cap["resid"][L], x)
            else:
                s["layer_note"] = f"{len(cap['resid'])} layers vs {len(ref_cap['resid'])}: not compared"
    summary, layers, requests, chats = [], [], [], [{"model": ref.name, "backend": _backend(ref), "reference": True,
                                                    "how": ref_chat_how, "prompt": ref_chat}]
    for j, m in others:
        row, req = _row(ref, m, texts, rows, k, ref_lp, ref_greedy, ref_chat, chat, stats[j], bos_id)
        chats.append({"model": m.name, "backend": _backend(m), "reference": False, "how": row.pop("_chat_how"),
                      "prompt": row.pop("_chat")})
        if m.backend.name == "llama.cpp" and ref_chat is not None:  # what a llama.cpp server would render
            native, how = native_chat(m.backend, chat)
            chats.append({"model": m.name, "backend": _backend(m), "reference": False, "how": how, "prompt": native})
            row["llamacpp_renderer"] = describe_difference(ref_chat, native) if native is not None else how
        row["verdict"], row["reason"] = judge(row, tol)
        summary.append(row)
        requests += req
        layers += stats[j]["layers"].rows(m.name)
    prov = {"reference": record(ref), "models": [record(m) for m in models], "n_texts": len(texts),
            "tolerance": tol.record(), "first_scored_token": k, "bos_prepended": bos_id is not None,
            "chat": chat, "token_ids": "the reference tokenizer's, for every model"}
    return ConformanceResult(pd.DataFrame(summary), prov, layers_frame=pd.DataFrame(layers, columns=[
        "model", "layer", "cosine", "rel_error", "rel_error_max_token", "n_tokens"]),
        requests_frame=pd.DataFrame(requests), chat_frame=pd.DataFrame(chats))


def _backend(model) -> str:
    s = model.backend.settings()
    what = s.get("weights") or s.get("dtype") or s.get("model") or ""
    return f"{model.backend.name} {what}".strip()


def _row(ref, m, texts, rows, k, ref_lp, ref_greedy, ref_chat, chat, s, bos_id):
    lp, greedy, err = _score(m, rows, k) if "skip" not in s else (None, None, None)
    diffs = [np.abs(a - b) for a, b in zip(lp, ref_lp)] if lp is not None else None
    requests = [{"model": m.name, "text": i, "n_tokens": len(rows[i]) - k,
                 "loglik_reference": float(ref_lp[i].sum()),
                 "loglik": float(lp[i].sum()) if lp is not None else float("nan"),
                 "max_abs_logprob_diff": float(diffs[i].max()) if diffs else float("nan")} for i in range(len(rows))]
    for r in requests:
        r["loglik_diff"] = r["loglik"] - r["loglik_reference"]
    if s["kl"]:
        kl, top1 = float(np.concatenate(s["kl"]).mean()), float(np.concatenate(s["top1"]).mean())
        top1_from = "argmax of full distributions"
    else:  # a served model: only whether each text token is its top-1 is known
        kl, top1, top1_from = float("nan"), float("nan"), "not available"
        if greedy is not None:
            g, rg = np.concatenate(greedy), np.concatenate(ref_greedy)
            known = g | rg  # where either says the text's token is its top-1, agreement is decided
            if known.any():
                top1, top1_from = float((g == rg)[known].mean()), f"greedy flags ({int(known.sum())} decided positions)"
    problems = [token_difference(ref.tokenizer, r, m.tokenizer, _ids(m, t, bos_id), i)
                for i, (t, r) in enumerate(zip(texts, rows))]
    problems = [p for p in problems if p]
    if len(m.tokenizer) != len(ref.tokenizer):
        problems.insert(0, f"vocabulary of {len(m.tokenizer)} tokens vs the reference's {len(ref.tokenizer)}")
    chat_text, chat_how = render_chat(m, chat)
    if ref_chat is None and chat_text is None:
        chat_cmp = "not compared"
    elif ref_chat is None or chat_text is None:
        chat_cmp = f"one renders no chat prompt ({'reference' if ref_chat is None else 'model'}: " \
                   f"{chat_how if chat_text is None else 'no template'})"
    else:
        chat_cmp = describe_difference(ref_chat, chat_text)
    return ({"model": m.name, "backend": _backend(m), "n_tokens": int(sum(len(r) - k for r in rows)),
             "next_token_kl": kl, "top1_agreement": top1, "top1_from": top1_from,
             "max_abs_logprob_diff": float(max(d.max() for d in diffs)) if diffs else float("nan"),
             "max_abs_loglik_diff": float(max(abs(r["loglik_diff"]) for r in requests)) if lp is not None else float("nan"),
             "resid_rel_error_max": max((r["rel_error"] for r in s["layers"].rows(m.name)), default=float("nan")),
             "tokenization": "same" if not problems else "; ".join(problems[:3]),
             "chat_prompt": chat_cmp, "scoring_error": err, "not_run": s.get("skip"), "layer_note": s["layer_note"],
             "_chat": chat_text, "_chat_how": chat_how}, requests)


class ConformanceResult(Result):
    """What :func:`conformance` returns (see there)."""

    def __init__(self, frame, provenance, layers_frame, requests_frame, chat_frame):
        super().__init__(frame, provenance)
        self._layers, self._requests, self._chat = layers_frame, requests_frame, chat_frame

    def summary(self) -> pd.DataFrame:
        """One row per compared model: model, backend, next_token_kl, top1_agreement,
        max_abs_logprob_diff, max_abs_loglik_diff, resid_rel_error_max, tokenization, chat_prompt,
        verdict, reason (and the rest of the row)."""
        first = ["model", "backend", "next_token_kl", "top1_agreement", "max_abs_logprob_diff", "max_abs_loglik_diff",
                 "resid_rel_error_max", "tokenization", "chat_prompt", "verdict", "reason"]
        return self.frame[first + [c for c in self.frame.columns if c not in first]].copy()

    def layers(self) -> pd.DataFrame:
        """model, layer, cosine (mean over tokens), rel_error (over all tokens), rel_error_max_token."""
        return self._layers.copy()

    def requests(self) -> pd.DataFrame:
        """Per model and text: the log-likelihood of its scored tokens, the reference's, the difference."""
        return self._requests.copy()

    def chat(self) -> pd.DataFrame:
        """The chat prompt each model renders (the reference first)."""
        return self._chat.copy()

    def plot(self, ax=None):
        """Relative error of resid_post per layer, one line per compared model (log scale)."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        lay = self._layers
        if lay.empty:
            raise InvalidInputError("no layers were compared (no pair of models could both capture resid_post)")
        for name, part in lay.groupby("model", sort=False):
            ax.plot(part["layer"], part["rel_error"], marker="o", ms=3, label=name)
        ax.set_yscale("log")
        ax.set(xlabel="layer", ylabel="relative error of resid_post",
               title=f"divergence from {model_name(self.provenance['reference']) or 'the reference'}")
        ax.legend(fontsize=8)
        return ax

    def __repr__(self):
        verdicts = ", ".join(f"{m}: {v}" for m, v in zip(self.frame["model"], self.frame["verdict"]))
        return f"ConformanceResult({verdicts})"
