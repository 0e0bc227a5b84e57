#!/usr/bin/env bash
# Fortunes: prepare sentences -> SentencePiece -> pretrain a sentence autoencoder -> evaluate -> reconstruct.
#
#   recipes/fortunes/run.sh [--debug] [--out DIR] [--shipped] [--denoise] [--set KEY=VALUE ...]
#
# --debug    tiny model and few steps (end to end in well under a minute)
# --out      where everything goes (default runs/fortunes, or runs/fortunes-debug); an existing run is resumed
# --shipped  use the sentences shipped in data/fortunes instead of rebuilding them from Debian's fortunes
# --denoise  the denoising variant: add the noise of noise.yaml (BART span masking) to the config
# --set      config overrides passed to `seqae pretrain`
# The final evaluation is DIR/metrics.json (train_exact_match, heldout_exact_match, heldout_token_accuracy, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
shipped=0
denoise=0
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --shipped) shipped=1 ;;
        --denoise) denoise=1 ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --shipped, --denoise, --set KEY=VALUE)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$out" ]; then
    out=runs/fortunes
    [ "$config" = "$here/debug.yaml" ] && out=runs/fortunes-debug
fi
mkdir -p "$out/data"

echo "== 1. prepare sentences -> $out/data"
if [ "$shipped" = 1 ]; then
    cp "$root/data/fortunes/train.txt" "$root/data/fortunes/heldout.txt" "$out/data/"
else
    "$py" "$here/prepare.py" --out "$out/data"
fi

if [ "$denoise" = 1 ]; then
    noise=$("$py" -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))["noise"]))' "$here/noise.yaml")
    overrides+=(--set "noise=$noise")
fi

echo "== 2. tokenizer + pretrain -> $out/run"
"$py" -m seqae pretrain "$config" --run-dir "$out/run" \
    --set "data.train=$out/data/train.txt" --set "data.heldout=$out/data/heldout.txt" "${overrides[@]}"

echo "== 3. reconstruct held-out examples -> $out/reconstructions.txt"
head -n 20 "$out/data/heldout.txt" > "$out/examples.txt"
"$py" -m seqae reconstruct "$out/run" --file "$out/examples.txt" | tee "$out/reconstructions.txt"

cp "$out/run/metrics.json" "$out/metrics.json"
echo "== done: $out/metrics.json"
cat "$out/metrics.json"
