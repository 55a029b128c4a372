# shellcheck shell=bash
# Sourced by launch/tpu.sh and launch/gpu.sh: the Python that the pinned requirements need and
# the one shell line that installs them with it.
#
# jax, flax, numpy, scipy, ... of requirements.txt require Python >= 3.11 (their
# Requires-Python; tests/test_launch.py checks every pin, and accelerator_requires_python.txt
# for jax[tpu] / jax[cuda12]). Cloud images ship older ones (tpu-ubuntu2204-base: 3.10), so
# the interpreter comes from uv (astral.sh's standalone installer, pinned, into ~/.local/bin):
# `uv venv --python 3.11` uses a host Python 3.11 or downloads a standalone CPython 3.11.

PYTHON_VERSION="3.11"
UV_VERSION="0.13.8"

# Prints a bash line that, run in the repository root after `set -eo pipefail`, makes .venv
# a Python ${PYTHON_VERSION} virtualenv (kept if it exists), stops with one error line if its
# Python is older, then installs requirements.txt, jax[$1] of the pinned jax and sbt_jax.
venv_setup_line() {
  local extra="$1" jax_version min_version
  jax_version="$(sed -n 's/^jax==//p' requirements.txt)"
  min_version="(${PYTHON_VERSION/./, })"
  # Single quotes: $HOME and $uv expand where the line runs (a TPU worker), not here.
  # shellcheck disable=SC2016
  printf '%s' 'uv="$HOME/.local/bin/uv"; ' \
    '[ -x "$uv" ] || curl -LsSf https://astral.sh/uv/'"${UV_VERSION}"'/install.sh' \
    ' | env UV_INSTALL_DIR="$HOME/.local/bin" UV_NO_MODIFY_PATH=1 sh; ' \
    '[ -x .venv/bin/python ] || "$uv" venv -q --python '"${PYTHON_VERSION}"' .venv; ' \
    '.venv/bin/python -c "import sys; sys.exit(sys.version_info < '"${min_version}"')"' \
    ' || { echo "set-up: .venv has $(.venv/bin/python -V 2>&1); the pins of requirements.txt' \
    ' need Python >= '"${PYTHON_VERSION}"' (remove .venv and re-run)" >&2; exit 1; }; ' \
    '"$uv" pip install -q --python .venv/bin/python -r requirements.txt' \
    " 'jax[${extra}]==${jax_version}'; " \
    '"$uv" pip install -q --python .venv/bin/python --no-deps -e .'
}
