#!/usr/bin/env bash
# espeak_asr: spoken sentences -> pretrain a speech autoencoder on the audio alone -> export its encoder ->
# CTC fine-tuning on 10% of the transcripts, twice with the same budget and seed: pretrained vs random init.
#
#   recipes/espeak_asr/run.sh [--debug] [--out DIR] [--data DIR] [--set KEY=VALUE ...]
#
# full      synthesise 1,600 train utterances (40 speakers), 100 heldout (5 other speakers) and 200 test
#           (10 other speakers) sentences with espeak-ng and sox (kept in DIR/data and reused), then train
# --debug   a handful of utterances, tiny step counts: end to end in about a minute
# --data    use DIR/{train,heldout,test}.jsonl manifests (path, text, speaker) instead of synthesising, e.g.
#           LibriSpeech: prepare.py --out DIR --librispeech ROOT
# --out     where everything goes (default runs/espeak_asr, or runs/espeak_asr-debug); runs are resumed
# --set     overrides for both fine-tuning runs (seqae finetune asr)
# Result: DIR/metrics.json with wer_pretrained, wer_scratch, cer_pretrained, cer_scratch (test split).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
data=""
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --data) data=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --data DIR, --set KEY=VALUE)" >&2; exit 2 ;;
    esac
    shift
done
debug=0
[ "$config" = "$here/debug.yaml" ] && debug=1
[ -n "$out" ] || { out=runs/espeak_asr; [ $debug = 1 ] && out=runs/espeak_asr-debug; }
mkdir -p "$out"

if [ -z "$data" ]; then
    data=$out/data
    echo "== 1. synthesise sentences with espeak-ng -> $data"
    if [ ! -f "$data/test.jsonl" ]; then
        if [ $debug = 1 ]; then
            "$py" "$here/prepare.py" --out "$data" --train-speakers 6 --heldout-speakers 2 --test-speakers 2 \
                --train-sentences 4 --eval-sentences 3
        else
            "$py" "$here/prepare.py" --out "$data"
        fi
    fi
else
    echo "== 1. data: manifests in $data"
fi
for split in train heldout test; do
    [ -f "$data/$split.jsonl" ] || { echo "run.sh: $data/$split.jsonl not found" >&2; exit 2; }
done

pretrain_steps=()
[ $debug = 1 ] && pretrain_steps=(--set train.max_steps=20 --set train.eval_every=0 --set train.checkpoint_every=20
                                  --set data.eval_sentences=8)
echo "== 2. pretrain a speech autoencoder on the training audio (no transcripts) -> $out/pretrain"
"$py" -m seqae pretrain "$here/pretrain.yaml" --run-dir "$out/pretrain" --set "data.train=$data/train.jsonl" \
    --set "data.heldout=$data/heldout.jsonl" --set "features.cache_dir=$out/features" "${pretrain_steps[@]}"

echo "== 3. export the encoder -> $out/export"
"$py" -m seqae export "$out/pretrain" "$out/export" --force

common=(--set "data.train=$data/train.jsonl" --set "data.heldout=$data/heldout.jsonl"
        --set "data.test=$data/test.jsonl" --set "data.feature_cache=$out/features")
echo "== 4. CTC fine-tuning from the pretrained encoder -> $out/pretrained"
"$py" -m seqae finetune asr "$config" --run-dir "$out/pretrained" --set "encoder=$out/export" \
    "${common[@]}" "${overrides[@]}"
echo "== 5. CTC fine-tuning of the same architecture from random weights -> $out/scratch"
"$py" -m seqae finetune asr "$config" --run-dir "$out/scratch" --set encoder=null \
    --set "architecture=$out/export" "${common[@]}" "${overrides[@]}"

"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {init: json.loads((out / init / "metrics.json").read_text()) for init in ("pretrained", "scratch")}
metrics = {f"{m}_{init}": runs[init][f"test_{m}"] for m in ("wer", "cer") for init in runs}
metrics.update({f"heldout_{m}_{init}": runs[init][f"heldout_{m}"] for m in ("wer", "cer") for init in runs})
metrics.update(labelled_utterances=runs["pretrained"]["labelled_utterances"],
               label_fraction=runs["pretrained"]["label_fraction"], steps=runs["pretrained"]["step"],
               test_utterances=runs["pretrained"]["test_utterances"])
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(json.dumps(metrics, indent=2))
PY
echo "== done: $out/metrics.json"
