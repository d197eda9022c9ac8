"""Chat-formatted scoring: an item as a user turn through the model's own chat template, its
answer scored as the assistant's reply. Every probe and task that offers ``format="chat"``
renders through this module, so the token accounting is written down once.

The rendering of a request ``(user, reply)``:

* context = ``tokenizer.apply_chat_template([system?, user], add_generation_prompt=True)`` as
  text: the template's own special tokens (its BOS if it writes one), the system turn when
  ``system_prompt`` is given (else whatever default the template itself inserts), the user turn,
  and the *assistant prefix* (e.g. ``"<|im_start|>assistant\\n"``). The prefix is context: it is
  what the model is given at inference, never part of the scored continuation.
* continuation = the reply with its leading whitespace removed (an assistant reply starts right
  after the prefix; a raw continuation's leading space belongs to raw text).
* no extra BOS: the context is tokenised as the template wrote it (``add_special_tokens=False``,
  as ``apply_chat_template(tokenize=True)`` does), so a template that writes its BOS has exactly
  one, and one that does not has none (as at inference).
* the context keeps its trailing whitespace (the ``"\\n"`` after the assistant prefix), unlike the
  raw split (:mod:`workbench.scoring.tokenize`); the context's tokens are exactly
  ``apply_chat_template(..., tokenize=True)``'s.
* a request with an empty context (a probe that scores a whole sentence, e.g. CrowS-Pairs)
  becomes the reply to the neutral user turn :data:`SENTENCE_PROMPT`; both sentences of a pair
  get the same one, so only the sentences differ.

>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2", chat_template=CHATML)
>>> render(m, "Is the sky blue?")
'<|endoftext|><|user|>\\nIs the sky blue?\\n<|assistant|>\\n'
>>> chat_requests(m, [("Is the sky blue?", " Yes")])[0][1]
'Yes'
"""
from __future__ import annotations

from workbench.engine.prompts import messages
from workbench.errors import InvalidInputError, WrongModelKindError

FORMATS = ("raw", "chat")
# the user turn whose reply is a whole sentence (probes that score sentences with no context)
SENTENCE_PROMPT = "Write a sentence."
# a small template for tests and examples (tiny models have none): it writes its BOS, as Llama's does
CHATML = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def has_template(model) -> bool:
    return bool(getattr(model.tokenizer, "chat_template", None))


def check_format(format, model=None, what: str = "scoring", system_prompt=None) -> str:
    """``format`` is "raw" or "chat"; "chat" needs a causal LM with a chat template. Returns it."""
    if not isinstance(format, str) or format not in FORMATS:
        raise InvalidInputError(f"format must be 'raw' or 'chat', got {format!r}")
    if system_prompt is not None:
        if not isinstance(system_prompt, str):
            raise InvalidInputError(f"system_prompt must be a string or None, got {type(system_prompt).__name__}")
        if format != "chat":
            raise InvalidInputError("system_prompt is used in the chat format only: pass format='chat' "
                                    "(chat=True for generate) or drop system_prompt")
    if format == "chat" and model is not None:
        if model.kind != "causal":
            raise WrongModelKindError(
                f"{what} with format='chat' needs a causal (chat) LM, but {model.name} is a {model.kind} model "
                "(a chat template frames the text as a conversation to be continued); use format='raw'")
        if not has_template(model):
            raise InvalidInputError(
                f"{model.name} has no chat template (its tokenizer's chat_template is empty), so {what} cannot "
                "be chat-formatted: use format='raw' (base models), or set model.tokenizer.chat_template")
    return format


def render(model, user: str, system_prompt: str | None = None) -> str:
    """The context string for ``user``: template + user turn + assistant prefix (see module doc)."""
    try:
        return model.tokenizer.apply_chat_template(messages(user, system_prompt), tokenize=False,
                                                   add_generation_prompt=True)
    except Exception as e:  # jinja's TemplateError, e.g. a template that refuses a system turn
        extra = " (try without system_prompt)" if system_prompt is not None else ""
        raise InvalidInputError(f"the chat template of {model.name} could not render the prompt{extra}: "
                                f"{type(e).__name__}: {e}; use format='raw'") from None


def prompt_ids(model, user: str, system_prompt: str | None = None) -> list[int]:
    """The template's own tokenisation of the prompt (what ``render`` + the scoring path must match)."""
    out = model.tokenizer.apply_chat_template(messages(user, system_prompt), tokenize=True,
                                              add_generation_prompt=True)
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return list(ids)


def chat_requests(model, requests, system_prompt: str | None = None) -> list[tuple[str, str]]:
    """Raw ``(context, continuation)`` pairs as ``(rendered context, reply)`` (see module doc)."""
    cache: dict = {}
    out = []
    for i, (context, continuation) in enumerate(requests):
        user = context.strip() or SENTENCE_PROMPT
        if user not in cache:
            cache[user] = render(model, user, system_prompt)
        reply = continuation.lstrip()
        if not reply:
            raise InvalidInputError(f"request {i} has a blank continuation: there is no reply to score")
        out.append((cache[user], reply))
    return out


def format_options(options: dict) -> dict:
    """The ``format``/``system_prompt`` keyword arguments from a probe's options."""
    return {"format": options.get("format", "raw"), "system_prompt": options.get("system_prompt")}


def reading_identity(state_id: str, label: str, format: str = "raw", system_prompt: str | None = None):
    """``(fingerprint, label)`` of a result for :func:`workbench.compare`: a chat-formatted reading
    is the model state *and* its format (and system prompt), so raw vs chat of one model compare as
    two readings without ``allow_same_model``, while two runs in one format are still refused. Raw
    readings keep the bare state id (as before there was a chat format).

    >>> reading_identity("abc", "m", "chat", "Be brief.")
    ('abc|format=chat|system=Be brief.', 'm (chat)')
    """
    if (format or "raw") == "raw":
        return state_id, label
    ident = f"{state_id}|format={format}" + (f"|system={system_prompt}" if system_prompt is not None else "")
    return ident, f"{label} ({format})"
