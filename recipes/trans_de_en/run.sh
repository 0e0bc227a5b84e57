#!/usr/bin/env bash
# trans_de_en: German-English pairs from Debian's trans-de-en -> pretrain a text autoencoder on the German side ->
# export its encoder -> de->en seq2seq fine-tuning on 10% of the pairs, twice with the same budget and seed:
# pretrained vs random init.
#
#   recipes/trans_de_en/run.sh [--debug] [--out DIR] [--pairs FILE] [--set KEY=VALUE ...]
#
# full      about 16,000 pairs from /usr/share/trans/de-en (500 test, 500 heldout, the rest train)
# --debug   400 pairs, tiny models and step counts: end to end in about a minute
# --pairs   a German<TAB>English file to split instead of the dictionary (needed when trans-de-en is missing)
# --out     where everything goes (default runs/trans_de_en, or runs/trans_de_en-debug); runs are resumed
# --set     overrides for both fine-tuning runs (seqae finetune translate)
# Result: DIR/metrics.json with bleu_pretrained, bleu_scratch, chrf_pretrained, chrf_scratch (test split).
# The pairs are GPL-2+ (the Ding dictionary): they are built here, never committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
pairs=()
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --pairs) pairs=(--pairs "$2"); shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --pairs FILE, --set KEY=VALUE)" >&2
           exit 2 ;;
    esac
    shift
done
debug=0
[ "$config" = "$here/debug.yaml" ] && debug=1
[ -n "$out" ] || { out=runs/trans_de_en; [ $debug = 1 ] && out=runs/trans_de_en-debug; }
mkdir -p "$out"
data=$out/data

echo "== 1. German-English pairs -> $data"
if [ ! -f "$data/test.tsv" ]; then
    if [ $debug = 1 ]; then
        "$py" "$here/prepare.py" --out "$data" "${pairs[@]}" --max-pairs 400 --test 40 --heldout 40
    else
        "$py" "$here/prepare.py" --out "$data" "${pairs[@]}"
    fi
fi

pretrain_debug=()
[ $debug = 1 ] && pretrain_debug=(--set train.max_steps=30 --set train.eval_every=0 --set train.checkpoint_every=30
                                  --set data.eval_sentences=16 --set tokenizer.vocab_size=300)
echo "== 2. pretrain a text autoencoder on the German side (no translations) -> $out/pretrain"
"$py" -m seqae pretrain "$here/pretrain.yaml" --run-dir "$out/pretrain" --set "data.train=$data/train.de.txt" \
    --set "data.heldout=$data/heldout.de.txt" "${pretrain_debug[@]}"

echo "== 3. export the encoder -> $out/export"
"$py" -m seqae export "$out/pretrain" "$out/export" --force

common=(--set "data.train=$data/train.tsv" --set "data.heldout=$data/heldout.tsv" --set "data.test=$data/test.tsv")
echo "== 4. de->en fine-tuning from the pretrained encoder -> $out/pretrained"
"$py" -m seqae finetune translate "$config" --run-dir "$out/pretrained" --set "encoder=$out/export" \
    "${common[@]}" "${overrides[@]}"
echo "== 5. de->en fine-tuning of the same architecture from random weights -> $out/scratch"
"$py" -m seqae finetune translate "$config" --run-dir "$out/scratch" --set encoder=null \
    --set "architecture=$out/export" "${common[@]}" "${overrides[@]}"

"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {init: json.loads((out / init / "metrics.json").read_text()) for init in ("pretrained", "scratch")}
metrics = {f"{m}_{init}": runs[init][f"test_{m}"] for m in ("bleu", "chrf") for init in runs}
metrics.update({f"heldout_{m}_{init}": runs[init][f"heldout_{m}"] for m in ("bleu", "chrf", "loss") for init in runs})
metrics.update(labelled_pairs=runs["pretrained"]["labelled_pairs"], label_fraction=runs["pretrained"]["label_fraction"],
               steps=runs["pretrained"]["step"], beam_size=runs["pretrained"]["beam_size"],
               test_sentences=runs["pretrained"]["test_sentences"])
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(json.dumps(metrics, indent=2))
PY
echo "== done: $out/metrics.json"
