#!/usr/bin/env bash
# One-time local set-up (idempotent): Debian's Fashion-MNIST and shellcheck, a virtualenv in
# .venv with the pinned requirements, and the TFDS ArrayRecord build of Fashion-MNIST.
# Safe to re-run. `--photos` also installs the Debian wallpaper packages whose photographs
# make the natural-RGB dataset photo_tiles_deb (sbt_jax/data/photo_tiles_deb.py) and builds it.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOTOS=0
for arg in "$@"; do
  case "${arg}" in
    --photos) PHOTOS=1 ;;
    *) echo "launch/setup.sh: unknown argument '${arg}' (known: --photos)" >&2; exit 2 ;;
  esac
done
PHOTO_PACKAGES=(mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04)

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [[ ! -f "${FMNIST_DIR}/train-images-idx3-ubyte.gz" ]]; then
  if [[ "$(id -u)" == "0" ]]; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  else
    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'." >&2
    exit 1
  fi
fi

if [[ "${PHOTOS}" == "1" && ! -f /usr/share/backgrounds/mate/nature/Storm.jpg ]]; then
  if [[ "$(id -u)" == "0" ]]; then
    apt-get update -qq && apt-get install -y -qq "${PHOTO_PACKAGES[@]}"
  else
    echo "The photographs are missing: run 'sudo apt-get install ${PHOTO_PACKAGES[*]}'." >&2
    exit 1
  fi
fi

# The tests lint launch/*.sh with shellcheck.
if ! command -v shellcheck >/dev/null; then
  if [[ "$(id -u)" == "0" ]]; then
    apt-get update -qq && apt-get install -y -qq shellcheck
  else
    echo "shellcheck is missing (the tests lint launch/*.sh): run 'sudo apt-get install shellcheck'." >&2
    exit 1
  fi
fi

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "${PYTHON}" -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.requirements.installed; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  cp requirements.txt .venv/.requirements.installed
fi

# Build the default dataset once (ArrayRecord, ~30 s); later runs find it prepared.
.venv/bin/python -m sbt_jax.data.prepare --dataset fashion_mnist_deb
if [[ "${PHOTOS}" == "1" ]]; then
  .venv/bin/python -m sbt_jax.data.prepare --dataset photo_tiles_deb  # ~10 s
fi
