#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (slow tests included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
