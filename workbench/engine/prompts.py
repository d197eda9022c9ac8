"""The one rendering of a user turn through a chat template (and of a generation prompt), shared
by :mod:`workbench.scoring.chat` (scoring a reply) and every backend's generation."""
from __future__ import annotations

from workbench.errors import InvalidInputError


def messages(user: str, system_prompt: str | None) -> list[dict]:
    """The chat messages of one user turn, after an optional system turn."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    return head + [{"role": "user", "content": user}]


def prompt_text(tokenizer, prompt: str, chat: bool, system_prompt: str | None = None) -> str:
    """The text a generation starts from: ``prompt`` itself, or (``chat``) the prompt as a user
    turn of the tokenizer's chat template with the assistant's turn opened."""
    if not chat:
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidInputError("chat=True but this tokenizer has no chat template; use chat=False "
                                "or a chat (instruct) model")
    return tokenizer.apply_chat_template(messages(prompt, system_prompt), tokenize=False, add_generation_prompt=True)
