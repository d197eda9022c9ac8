"""The one collector of software versions: every fingerprint, provenance record, run row and
audit card reads its versions here, under the same keys.

``versions()`` is what changes a model's numbers (the workbench, torch, transformers, python):
every fingerprint and every result's provenance holds it. The runner adds numpy
(:func:`package_versions`); an audit card adds the libraries its statistics and report use and
the platform (``versions(*AUDIT_PACKAGES, platform=True)``).

>>> sorted(versions())
['python', 'torch', 'transformers', 'workbench']
>>> sorted(package_versions())
['numpy', 'python', 'torch', 'transformers', 'workbench']
"""
from __future__ import annotations

import platform as _platform
from importlib import metadata

from workbench._version import __version__

# what an audit card records besides versions(): its statistics, report and data libraries
AUDIT_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "captum", "datasets", "nbconvert")


def _module_version(name: str) -> str | None:
    """A package's version: its module's ``__version__`` for torch and transformers (the value
    fingerprints have always held), else the installed distribution's; None when not installed."""
    if name == "workbench":
        return __version__
    if name in ("torch", "transformers", "numpy"):
        module = __import__(name)
        return module.__version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(*extra: str, platform: bool = False) -> dict:
    """{package: version} for the workbench, torch, transformers and python, plus ``extra``
    packages (None where not installed) and, with ``platform=True``, the operating system."""
    out = {name: _module_version(name) for name in ("torch", "transformers", "workbench", *extra)}
    out["python"] = _platform.python_version()
    if platform:
        out["platform"] = _platform.platform()
    return out


def package_versions() -> dict:
    """The versions a results store records with every run and attempt."""
    return versions("numpy")
