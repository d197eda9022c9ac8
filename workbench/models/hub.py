"""Hub ids (``owner/name`` with an optional revision): fetched into (or found in) the Hugging Face
cache as a snapshot folder, then loaded like any local folder. Offline, a cached snapshot
loads; an uncached one gets an :class:`OfflineError` that says how to point at a local folder."""
from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import ModelNotFoundError, OfflineError, UnsafeWeightsError
from workbench.models.checkpoint import weight_files_in
from workbench.models.folder import from_folder

# Only what loading needs: configs, safetensors weights, tokenizer files and the model card
# (licence). Never both a sharded and a consolidated copy of the weights.
_PATTERNS = ["*.json", "model*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken", "tokenizer*",
             "README.md"]


def _offline_message(repo_id: str, revision: str | None, why: str, download_hint: str = "") -> str:
    rev = f" at revision {revision!r}" if revision else ""
    return (f"cannot load {repo_id!r}{rev} from the Hugging Face Hub: this machine is offline ({why}) "
            "and it is not in the local Hugging Face cache. On a machine with internet run "
            f"`hf download {repo_id}{download_hint} --local-dir <folder>`, copy the folder here, and pass "
            "its path instead (wb.load_model('/path/to/<folder>'), wb.inspect.load_sae('/path/to/<folder>'))"
            "; or use an embedded model (wb.list_models()).")


def download(repo_id: str, revision: str | None, patterns: list[str], hub_cache_dir=None,
             download_hint: str = "") -> Path:
    """The local snapshot folder of ``repo_id`` holding ``patterns`` (downloaded if online and
    missing), with every hub failure turned into a WorkbenchError that says what to do. The one
    place the workbench talks to the Hub (models and SAEs)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, cache_dir=hub_cache_dir,
                                   local_files_only=offline)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as e:
        why = "HF_HUB_OFFLINE=1" if offline else f"{type(e).__name__}"
        raise OfflineError(_offline_message(repo_id, revision, why, download_hint)) from e
    except GatedRepoError as e:
        raise ModelNotFoundError(f"{repo_id!r} is gated: accept its licence on huggingface.co and log in "
                                 "with `hf auth login`, then try again.") from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"{repo_id!r} has no revision {revision!r}: pass a branch, tag or commit "
                                 "that exists.") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"no repository {repo_id!r} on the Hugging Face Hub (or it is private): check "
                                 "the id, or pass a local folder.") from e
    except OSError as e:  # connection failures surface as OSError subclasses (httpx/requests)
        raise OfflineError(_offline_message(repo_id, revision, f"{type(e).__name__}: {e}", download_hint)) from e
    return Path(folder)


def snapshot(repo_id: str, revision: str | None = None, allow_pickle: bool = False,
             trust_remote_code: bool = False, hub_cache_dir=None) -> Path:
    """Local snapshot folder of ``repo_id`` at ``revision`` (downloaded if online and missing)."""
    patterns = _PATTERNS + (["pytorch_model*.bin"] if allow_pickle else []) + (["*.py"] if trust_remote_code else [])
    return download(repo_id, revision, patterns, hub_cache_dir)


def load_hub(repo_id: str, *, revision=None, hub_cache_dir=None, **opts):
    folder = snapshot(repo_id, revision, opts["allow_pickle"], opts["trust_remote_code"], hub_cache_dir)
    if not list(folder.glob("*.safetensors")) and not opts["allow_pickle"]:
        raise UnsafeWeightsError(f"{repo_id!r} has no safetensors weights in {folder}. If it ships "
                                 "pickle weights (pytorch_model.bin) and you trust it, pass allow_pickle=True.")
    files, safe = weight_files_in(folder, opts["allow_pickle"])
    opts["name"] = opts.get("name") or repo_id
    # the snapshot folder is named by the commit: the source records exactly which one was loaded
    return from_folder(folder, weight_files=files, use_safetensors=safe,
                       source=f"hub:{repo_id}@{folder.name}", **opts)
