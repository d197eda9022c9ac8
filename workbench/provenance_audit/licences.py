"""Licence names as SPDX ids where one exists (``LicenseRef-...`` for the common model licences
that have none), so two sources that say the same thing in different words compare equal.

>>> spdx_id("apache-2.0"), spdx_id("Apache Software License"), spdx_id("gemma")
('Apache-2.0', 'Apache-2.0', 'LicenseRef-Gemma-Terms-of-Use')
>>> spdx_id("unknown (no licence in the model card: check the source)") is None
True
"""
from __future__ import annotations

import re
from functools import lru_cache

# names used on the Hugging Face hub, in Python classifiers and in GGUF headers that are not SPDX
# keys themselves (the hub's own identifiers for model licences without an SPDX id)
_ALIASES = {
    "apache 2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0", "apache software license": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0", "apache2": "Apache-2.0", "mit license": "MIT",
    "bsd": "BSD-3-Clause", "gemma": "LicenseRef-Gemma-Terms-of-Use", "gemma terms of use": "LicenseRef-Gemma-Terms-of-Use",
    "llama2": "LicenseRef-Llama-2-Community", "llama3": "LicenseRef-Llama-3-Community",
    "llama3.1": "LicenseRef-Llama-3.1-Community", "llama3.2": "LicenseRef-Llama-3.2-Community",
    "openrail": "LicenseRef-OpenRAIL", "openrail++": "LicenseRef-OpenRAIL-plus-plus",
    "bigscience-openrail-m": "LicenseRef-BigScience-OpenRAIL-M", "creativeml-openrail-m": "LicenseRef-CreativeML-OpenRAIL-M",
    "qwen": "LicenseRef-Qwen", "deepseek": "LicenseRef-DeepSeek",
}
# what the first lines of a licence file say, for files without a name in them
_FILE_PATTERNS = [
    (r"apache license\s+version 2\.0", "Apache-2.0"), (r"\bmit license\b|permission is hereby granted, free of charge", "MIT"),
    (r"gemma terms of use", "LicenseRef-Gemma-Terms-of-Use"), (r"llama 2 community license", "LicenseRef-Llama-2-Community"),
    (r"creative commons attribution 4\.0", "CC-BY-4.0"), (r"gnu general public license\s+version 3", "GPL-3.0-only"),
]


@lru_cache(maxsize=1)
def _spdx_keys() -> dict:
    from license_expression import get_spdx_licensing  # ships the SPDX list: works offline
    return {s.key.lower(): s.key for s in get_spdx_licensing().known_symbols.values()}


def spdx_id(text) -> str | None:
    """The SPDX id (or ``LicenseRef-`` name) of a licence string; None for unknown or empty."""
    if not text:
        return None
    t = str(text).strip().strip("'\"")
    if t.startswith("LicenseRef-"):
        return t
    low = t.lower()
    if low.startswith(("unknown", "other", "none")):
        return None
    low = re.sub(r"\s*\(.*\)\s*$", "", low).strip()  # "Gemma Terms of Use (https://...)"
    low = low.replace("license :: osi approved :: ", "")
    if low in _ALIASES:
        return _ALIASES[low]
    keys = _spdx_keys()
    if low in keys:
        return keys[low]
    return None


def spdx_from_file(text: str) -> str | None:
    """The licence a licence file's text names (its first 2,000 characters), else None."""
    head = re.sub(r"<[^>]+>", " ", text[:20000]).lower()  # an HTML terms page reads as text
    head = re.sub(r"\s+", " ", head)[:2000]
    for pattern, key in _FILE_PATTERNS:
        if re.search(pattern, head):
            return key
    return None
