"""How the documentation indicators correspond to the Foundation Model Transparency Index.

The FMTI (Bommasani et al. 2023; revised indicators in December 2025) scores *developers* on 100
indicators each, from what they disclose anywhere. The workbench can only check what a model's
files carry, so it has its own short list of indicators (:meth:`Documentation.indicators`), each
mapped here to the FMTI indicator it speaks to, in both versions, by the names the index
publishes (``workbench/data/fmti/indicators.csv``, CC-BY, see ``SOURCE.md`` there). An empty
name means that version has no counterpart. Every FMTI indicator that no workbench indicator
maps to is listed by :func:`not_checkable`, with the reason, so the two lists together cover
the index exactly (tested).

What a mapping does not mean: a "disclosed" status here is not an FMTI point. The FMTI asks for
more than a file can show (e.g. "Data sources" wants a meaningful decomposition of all sources;
a ``datasets:`` list in a model card is a partial disclosure at best).

>>> table = indicators_table()
>>> sorted(table.version.unique()), int(table.groupby("version").size().min())
(['2023', '2025'], 100)
>>> MAPPING["licence"]
('Distribution: Model License', 'Release: Terms of use')
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

VERSIONS = {"2023": "October 2023 (v1.0) and May 2024 (v1.1)", "2025": "December 2025"}

# workbench indicator -> ("Subdomain: Indicator" in the 2023 index, the same in the 2025 index)
MAPPING = {
    "model card": ("Model basics: Centralized model documentation", ""),
    "developer named": ("", ""),          # presupposed by every FMTI indicator
    "name and version": ("", ""),         # identification; not the FMTI's versioning *protocol*
    "model size": ("Model basics: Model size", "Model information: Basic model properties"),
    "architecture": ("Model basics: Model architecture", "Model information: Basic model properties"),
    "context length": ("Model basics: Model architecture", "Model information: Deeper model properties"),
    "vocabulary size": ("Model basics: Model components", "Model information: Deeper model properties"),
    "quantisation": ("Model basics: Model components", "Release: Quantization"),
    "licence": ("Distribution: Model License", "Release: Terms of use"),
    "base model": ("Methods: Model stages", "Model information: Model dependencies"),
    "training data": ("Data: Data sources", "Data Acquisition: Public datasets"),
    "languages": ("Capabilities: Capabilities description", ""),
    "intended use": ("Usage policy: Permitted, restricted, and prohibited uses",
                     "Acceptable use policy: Permitted, restricted, and prohibited uses"),
    "limitations": ("Limitations: Limitations description", ""),
    "evaluation results": ("Capabilities: Evaluation of capabilities", "Capabilities: Capabilities evaluation"),
    "evaluation reproduced": ("Capabilities: External reproducibility of capabilities evaluation",
                              "Capabilities: External reproducibility of capabilities evaluation"),
    "prompt format": ("Documentation for Deployers: Centralized documentation for downstream use", ""),
    "weights available": ("Model access: Full external model access", "Model access: Open weights"),
}

# why the FMTI indicators of a subdomain that no file can show are not checked, by subdomain
WHY = {
    "Data": "the developer's data records (size, creators, curation, filtering, licences, personal data)",
    "Data labor": "who produced or labelled the data, and on what terms, is not in the files",
    "Data access": "needs the training data itself",
    "Data Acquisition": "the developer's acquisition records (crawler, licences, usage data, laborers)",
    "Data Processing": "the developer's processing pipeline",
    "Data Properties": "needs the training data or the developer's statistics about it",
    "Compute": "training runs leave no trace in the weights",
    "Methods": "objectives, frameworks, code and dependencies are at most described in a card; not checkable",
    "Other resources": "about the developer's organisation and costs",
    "Data Mitigations": "the developer's procedures",
    "Model basics": "modalities are declared by a card, not measured here",
    "Model information": "benchmarked inference needs the developer's own measurements",
    "Model access": "about access programmes and protocols, not the files",
    "Capabilities": "demonstrations and third-party evaluations are outside the files; the workbench measures "
                    "train-test overlap itself (wb.contamination), which is evidence, not a disclosure",
    "Limitations": "demonstrations and third-party evaluations are outside the files",
    "Risks": "needs evaluations the developer ran or commissioned",
    "Model Mitigations": "needs the developer's mitigations and their evaluation",
    "Trustworthiness": "needs evaluations the developer ran or commissioned",
    "Inference": "needs the developer's own inference measurements",
    "Release": "about the developer's release process and channels",
    "Distribution": "about the developer's conduct and channels",
    "Usage policy": "about deployed systems and their enforcement, not the artifact",
    "Acceptable use policy": "about deployed systems and their enforcement, not the artifact",
    "Model behavior policy": "about deployed systems, not the artifact",
    "Model Behavior Policy": "about deployed systems, not the artifact",
    "User Interface": "about deployed systems, not the artifact",
    "User data protection": "about deployed systems, not the artifact",
    "Usage data": "about deployed systems, not the artifact",
    "Model Updates": "needs the developer's release history and policies",
    "Feedback": "needs reports from after release",
    "Impact": "needs reports from after release",
    "Post-deployment monitoring": "about the developer's conduct after release",
    "Downstream mitigations": "about the developer's products and documentation outside the files",
    "Documentation for Deployers": "responsible-use documentation is outside the files",
    "Accountability": "about the developer's governance",
}


@lru_cache(maxsize=1)
def indicators_table() -> pd.DataFrame:
    """Every FMTI indicator: version, domain, subdomain, indicator (the published names)."""
    path = resources.files("workbench") / "data" / "fmti" / "indicators.csv"
    with resources.as_file(path) as p:
        return pd.read_csv(p, dtype=str)


def mapped(version: str) -> set[str]:
    """The "Subdomain: Indicator" names of ``version`` that a workbench indicator speaks to."""
    k = list(VERSIONS).index(version)
    return {names[k] for names in MAPPING.values() if names[k]}


def not_checkable() -> pd.DataFrame:
    """fmti_version, fmti_domain (the FMTI subdomain), indicators, why not checkable offline: every
    FMTI indicator no workbench indicator maps to, grouped by subdomain."""
    table = indicators_table()
    rows = []
    for version in VERSIONS:
        have = mapped(version)
        part = table[table.version == version]
        for subdomain, group in part.groupby("subdomain", sort=False):
            left = [i for i in group.indicator if f"{subdomain}: {i}" not in have]
            if left:
                rows.append({"fmti_version": version, "fmti_domain": subdomain, "indicators": "; ".join(left),
                             "why not checkable offline": WHY.get(subdomain, "not in a model's files")})
    return pd.DataFrame(rows, columns=["fmti_version", "fmti_domain", "indicators", "why not checkable offline"])
