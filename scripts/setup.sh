#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install seqae with its test extra and the
# optional sentence-transformers and transformers loaders (their tests run with them).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.seqae-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing seqae and its dependencies into .venv (torch 2.11.0 + torchaudio 2.11.0: ~70 s the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev,st,hf]'
    touch "$stamp"
fi
