#!/usr/bin/env bash
# espeak_words: synthesise spoken words -> pretrain a frame autoencoder -> same-different AP and reconstructions.
#
#   recipes/espeak_words/run.sh [--debug] [--out DIR] [--set KEY=VALUE ...]
#
# full       synthesise 200 words x 30 speakers (train) and 50 other words x 10 other speakers (test) with
#            espeak-ng and sox (about 3 minutes; kept in DIR/data and reused), then train (config.yaml)
# --debug    the shipped fixture in data/espeak_words (48 train / 8 test words) and a tiny model (under a minute)
# --out      where everything goes (default runs/espeak_words, or runs/espeak_words-debug); a run is resumed
# --set      config overrides passed to `seqae pretrain`
# The final evaluation is DIR/metrics.json (heldout_mse, ap_z, ap_mean_frames, ap_downsampled, ...) and
# DIR/reconstructions/*.png (held-out words rebuilt from z).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --set KEY=VALUE)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$out" ]; then
    out=runs/espeak_words
    [ "$config" = "$here/debug.yaml" ] && out=runs/espeak_words-debug
fi
mkdir -p "$out"

if [ "$config" = "$here/debug.yaml" ]; then
    echo "== 1. data: the shipped fixture in $root/data/espeak_words"
    train=$root/data/espeak_words/train/manifest.jsonl
    test=$root/data/espeak_words/test/manifest.jsonl
else
    echo "== 1. synthesise words with espeak-ng -> $out/data"
    train=$out/data/train/manifest.jsonl
    test=$out/data/test/manifest.jsonl
    [ -f "$train" ] || "$py" "$here/synth.py" --out "$out/data/train" --words 200 --speakers 30
    [ -f "$test" ] || "$py" "$here/synth.py" --out "$out/data/test" --words 50 --speakers 10 \
        --word-offset 200 --speaker-offset 30
fi

echo "== 2. features + pretrain -> $out/run"
"$py" -m seqae pretrain "$config" --run-dir "$out/run" \
    --set "data.train=$train" --set "data.heldout=$test" "${overrides[@]}"

echo "== 3. evaluate: same-different AP on unseen words and speakers, reconstructions -> $out"
"$py" "$here/evaluate.py" --run "$out/run" --out "$out"
echo "== done: $out/metrics.json"
