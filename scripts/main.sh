#!/usr/bin/env bash
# The main job: set up .venv if needed, pretrain the default text autoencoder on the WordNet sentences shipped in
# data/wordnet, evaluate it on the held-out sentences, and write everything to runs/main (or --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec recipes/wordnet/run.sh --shipped --out runs/main "$@"
