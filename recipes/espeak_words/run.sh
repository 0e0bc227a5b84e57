#!/usr/bin/env bash
# espeak_words: synthesise spoken words -> pretrain a frame autoencoder -> same-different AP and reconstructions.
#
#   recipes/espeak_words/run.sh [--debug] [--out DIR] [--rounds 2] [--set KEY=VALUE ...]
#
# full       synthesise 200 words x 30 speakers (train), 50 other words x 10 other speakers (test) and 50 more
#            words x 10 more speakers (dev) with espeak-ng and sox (about 4 minutes; kept in DIR/data and reused),
#            then train (config.yaml), evaluating on dev; the test split is scored once, at the end
# --debug    the shipped fixture in data/espeak_words (48 train / 8 dev / 8 test words) and a tiny model
# --out      where everything goes (default runs/espeak_words, or runs/espeak_words-debug); a run is resumed
# --rounds   training rounds (default 2): round 1 mines its correspondence pairs with downsampled frames, each
#            later round with the previous round's z of the training words (data.neighbour_embeddings); the last
#            round is the one evaluated on test (chosen on dev: README)
# --set      config overrides passed to `seqae pretrain` (every round)
# The final evaluation is DIR/metrics.json (test: ap_z, ap_best_baseline, ap_ratio_best_baseline; dev: dev_ap_z,
# dev_heldout_mse, ...) and
# DIR/reconstructions/*.png (held-out words rebuilt from z).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
overrides=()
rounds=2
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        --rounds) rounds=$2; shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --rounds N, --set KEY=VALUE)" >&2
           exit 2 ;;
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
    split=$root/data/espeak_words
else
    echo "== 1. synthesise words with espeak-ng -> $out/data"
    split=$out/data
    [ -f "$split/train/manifest.jsonl" ] || "$py" "$here/synth.py" --out "$split/train" --words 200 --speakers 30
    [ -f "$split/test/manifest.jsonl" ] || "$py" "$here/synth.py" --out "$split/test" --words 50 --speakers 10 \
        --word-offset 200 --speaker-offset 30
    [ -f "$split/dev/manifest.jsonl" ] || "$py" "$here/synth.py" --out "$split/dev" --words 50 --speakers 10 \
        --word-offset 250 --speaker-offset 40
fi
train=$split/train/manifest.jsonl

echo "== 2. features + pretrain, $rounds round(s) -> $out/run (periodic and final evaluations on the dev split)"
run=""
for round in $(seq 1 "$rounds"); do
    previous=$run
    run=$out/run; [ "$round" -lt "$rounds" ] && run=$out/round$round
    mined=()
    if [ -n "$previous" ]; then  # the previous round's z of the training words chooses the pairs
        [ -f "$run/neighbour_z.npy" ] || { mkdir -p "$run"; "$py" -m seqae encode "$previous" "$train" "$run/neighbour_z.npy"; }
        mined=(--set "data.neighbour_embeddings=$run/neighbour_z.npy")
    fi
    echo "-- round $round -> $run"
    "$py" -m seqae pretrain "$config" --run-dir "$run" \
        --set "data.train=$train" --set "data.heldout=$split/dev/manifest.jsonl" "${mined[@]}" "${overrides[@]}"
done

echo "== 3. evaluate once on the test split (unseen words and speakers): AP against the best baseline -> $out"
"$py" "$here/evaluate.py" --run "$out/run" --out "$out" --train "$train" --test "$split/test/manifest.jsonl"
echo "== done: $out/metrics.json"
