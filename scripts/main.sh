#!/usr/bin/env bash
# The main job: set up .venv if needed, pretrain the default text autoencoder on the sentences shipped in
# data/fortunes, evaluate it on the held-out sentences, and write everything to runs/main (or --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec recipes/fortunes/run.sh --shipped --out runs/main "$@"
