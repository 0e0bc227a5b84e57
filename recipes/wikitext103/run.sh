#!/usr/bin/env bash
# WikiText-103: sentences -> SentencePiece -> pretrain a sentence autoencoder -> evaluate -> reconstruct.
#
#   recipes/wikitext103/run.sh [--debug] [--out DIR] [--source Salesforce/wikitext | LOCAL_DIR] [--set KEY=VALUE ...]
#
# --source   the hub dataset (default; needs the network or a warm Hugging Face cache) or a local folder with the
#            same parquet files laid out as on the hub (LOCAL_DIR/wikitext-103-raw-v1/train-00000-of-00002.parquet ...)
# --debug    tiny model and few steps; --out where everything goes (an existing run is resumed)
# The final evaluation is DIR/metrics.json (train_exact_match, heldout_exact_match, heldout_token_accuracy, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
source=Salesforce/wikitext
max_sentences=200000
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml; max_sentences=2000 ;;
        --out) out=$2; shift ;;
        --source) source=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --source SRC, --set KEY=VALUE)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$out" ]; then
    out=runs/wikitext103
    [ "$config" = "$here/debug.yaml" ] && out=runs/wikitext103-debug
fi
mkdir -p "$out/data"

echo "== 1. prepare sentences from $source -> $out/data"
"$py" "$here/prepare.py" --out "$out/data" --source "$source" --max-sentences "$max_sentences"

echo "== 2. tokenizer + pretrain -> $out/run"
"$py" -m seqae pretrain "$config" --run-dir "$out/run" \
    --set "data.train=$out/data/train.txt" --set "data.heldout=$out/data/heldout.txt" "${overrides[@]}"

echo "== 3. reconstruct held-out examples -> $out/reconstructions.txt"
head -n 20 "$out/data/heldout.txt" > "$out/examples.txt"
"$py" -m seqae reconstruct "$out/run" --file "$out/examples.txt" > "$out/reconstructions.txt"
head -n 10 "$out/reconstructions.txt"

cp "$out/run/metrics.json" "$out/metrics.json"
echo "== done: $out/metrics.json"
cat "$out/metrics.json"
