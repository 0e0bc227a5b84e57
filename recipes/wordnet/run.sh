#!/usr/bin/env bash
# WordNet: glosses and examples -> SentencePiece -> pretrain a sentence autoencoder -> evaluate -> reconstruct.
#
#   recipes/wordnet/run.sh [--debug] [--out DIR] [--shipped | --source DIR] [--heldout N] [--set KEY=VALUE ...]
#
# --debug    tiny model and few steps (end to end in well under a minute)
# --out      where everything goes (default runs/wordnet, or runs/wordnet-debug); an existing run is resumed
# --shipped  use the sentences shipped in data/wordnet (the same files prepare.py makes from wordnet-base)
# --source   WordNet's dict folder with data.{noun,verb,adj,adv} (default /usr/share/wordnet: Debian's wordnet-base)
# --heldout  sentences held out (default 2000; 100 with --debug; not with --shipped, which holds out 2000)
# --set      config overrides passed to `seqae pretrain` (e.g. train.max_steps=9000 for the hour-long run)
# The final evaluation is DIR/metrics.json (heldout_exact_match, heldout_exact_match_le20, train_exact_match on
# train_eval_sequences training sentences, heldout_token_accuracy, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
source=/usr/share/wordnet
shipped=0
heldout=""
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --shipped) shipped=1 ;;
        --source) source=$2; shift ;;
        --heldout) heldout=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --shipped, --source DIR, --heldout N, --set KEY=VALUE)" >&2; exit 2 ;;
    esac
    shift
done
debug=0
[ "$config" = "$here/debug.yaml" ] && debug=1
[ -n "$out" ] || { out=runs/wordnet; [ "$debug" = 1 ] && out=runs/wordnet-debug; }
[ -n "$heldout" ] || { heldout=2000; [ "$debug" = 1 ] && heldout=100; }

echo "== 1. prepare glosses and examples -> $out/data"
if [ "$shipped" = 1 ]; then
    mkdir -p "$out/data"
    gunzip -c "$root/data/wordnet/train.txt.gz" > "$out/data/train.txt"
    cp "$root/data/wordnet/heldout.txt" "$out/data/heldout.txt"
else
    "$py" "$here/prepare.py" --source "$source" --out "$out/data" --heldout "$heldout"
fi

echo "== 2. tokenizer + pretrain -> $out/run"
"$py" -m seqae pretrain "$config" --run-dir "$out/run" \
    --set "data.train=$out/data/train.txt" --set "data.heldout=$out/data/heldout.txt" "${overrides[@]}"

echo "== 3. reconstruct held-out examples -> $out/reconstructions.txt"
head -n 20 "$out/data/heldout.txt" > "$out/examples.txt"
"$py" -m seqae reconstruct "$out/run" --file "$out/examples.txt" > "$out/reconstructions.txt"
head -n 12 "$out/reconstructions.txt"

cp "$out/run/metrics.json" "$out/metrics.json"
echo "== done: $out/metrics.json"
cat "$out/metrics.json"
