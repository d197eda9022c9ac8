"""argparse types shared by the command lines (``workbench run``, ``workbench audit``): a bad
number is refused with what was wrong, before anything runs."""
from __future__ import annotations

import argparse


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (``--limit 0`` is refused, not read as "no limit")."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (seeds)."""
    return _whole_number(text, 0)
