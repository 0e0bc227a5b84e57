#!/usr/bin/env bash
# trans_de_en: does autoencoder pretraining help translation with few pairs? German-English pairs from Debian's
# trans-de-en -> two text autoencoders on monolingual text (source side; target side plus fortunes) -> exports
# (the target one with its decoder) -> seq2seq fine-tuning: a topline on all pairs, then on 10% of the pairs for
# each seed: encoder and decoder pretrained, encoder only, and the same architecture from random weights.
#
#   recipes/trans_de_en/run.sh [--debug] [--out DIR] [--pairs FILE [--source-column N --target-column N]]
#                              [--target-text FILE] [--seeds "0 1 2"]
#                              [--jobs 2] [--set KEY=VALUE ...] [--pretrain-set KEY=VALUE ...]
#
# full           about 16,000 pairs from /usr/share/trans/de-en (500 test, 500 heldout, the rest train)
# --debug        400 pairs, tiny models and step counts: end to end in about a minute
# --pairs        a source<TAB>target file (.gz too) to split instead of the dictionary: any language pair;
#                --source-column N / --target-column N pick two 0-based fields of a wider TSV (id<TAB>en<TAB>es)
# --target-text  more monolingual text of the target language for its autoencoder (repeatable; default for the
#                dictionary: data/fortunes/train.txt; with --pairs: none)
# --seeds        the seeds of the 10% runs (default "0 1 2"); the topline runs once, with the first
# --jobs         fine-tuning runs at a time (default 2: one thread each on a 2-core machine)
# --set          overrides for every fine-tuning run (seqae finetune translate; see config.yaml)
# --pretrain-set overrides for both pretraining runs (seqae pretrain; see pretrain.yaml)
# --out          where everything goes (default runs/trans_de_en, or runs/trans_de_en-debug); runs are resumed
# Result: DIR/metrics.json (chrf_topline, bleu_topline; at 10% chrf/bleu _pretrained, _encoder_only, _scratch as
# means over seeds with _seeds lists) and DIR/samples.md (5 test translations of each setting).
# The dictionary's pairs are GPL-2+: they are built here, never committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
pairs=()
own_pairs=0
texts=()
seeds="0 1 2"
jobs=2
overrides=()
pretrain_overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml ;;
        --out) out=$2; shift ;;
        --pairs) pairs+=(--pairs "$2"); own_pairs=1; shift ;;
        --source-column|--target-column) pairs+=("$1" "$2"); shift ;;
        --target-text) texts+=(--target-text "$2"); shift ;;
        --seeds) seeds=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        --pretrain-set) pretrain_overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --pairs FILE, --source-column N," \
                "--target-column N, --target-text FILE," \
                "--seeds LIST, --jobs N, --set KEY=VALUE, --pretrain-set KEY=VALUE)" >&2
           exit 2 ;;
    esac
    shift
done
debug=0
[ "$config" = "$here/debug.yaml" ] && debug=1
[ -n "$out" ] || { out=runs/trans_de_en; [ $debug = 1 ] && out=runs/trans_de_en-debug; }
[ $own_pairs = 0 ] && [ ${#texts[@]} = 0 ] && texts=(--target-text "$root/data/fortunes/train.txt")
mkdir -p "$out"
data=$out/data

echo "== 1. sentence pairs and monolingual corpora -> $data"
if [ ! -f "$data/test.tsv" ]; then
    sizes=()
    [ $debug = 1 ] && sizes=(--max-pairs 400 --test 40 --heldout 40)
    "$py" "$here/prepare.py" --out "$data" "${pairs[@]}" "${texts[@]}" "${sizes[@]}"
fi

pretrain_debug=()
[ $debug = 1 ] && pretrain_debug=(--set train.max_steps=30 --set train.eval_every=0 --set train.checkpoint_every=30
                                  --set data.eval_sentences=16 --set tokenizer.vocab_size=300
                                  --set model.embed_dim=32 --set model.hidden_dim=32 --set model.decoder_dim=32
                                  --set model.ff_dim=64 --set model.decoder_layers=1 --set model.bottleneck_dim=32)
echo "== 2. pretrain an autoencoder per language on monolingual text (no translations) -> $out/pretrain_{source,target}"
pretrain() {  # side, export options
    "$py" -m seqae pretrain "$here/pretrain.yaml" --run-dir "$out/pretrain_$1" --set train.progress=false \
        --set "data.train=$data/pretrain.$1.txt" --set "data.heldout=$data/heldout.$1.txt" \
        "${pretrain_debug[@]}" "${pretrain_overrides[@]}" > "$out/pretrain_$1.log" 2>&1 \
        || { echo "pretraining the $1 side failed; its log, $out/pretrain_$1.log, ends:" >&2
             tail -n 20 "$out/pretrain_$1.log" >&2; return 1; }
    "$py" -m seqae export "$out/pretrain_$1" "$out/export_$1" --force "${@:2}" >> "$out/pretrain_$1.log"
    tail -n 3 "$out/pretrain_$1.log"
}
mkdir -p "$out"
pretrain source & source_job=$!
pretrain target --decoder & target_job=$!
wait $source_job && wait $target_job

echo "== 3. fine-tuning runs, $jobs at a time (logs: DIR/<run>.log)"
common=(--set "data.train=$data/train.tsv" --set "data.heldout=$data/heldout.tsv" --set "data.test=$data/test.tsv"
        --set "architecture=$out/export_source" --set "decoder_architecture=$out/export_target")
first=${seeds%% *}
runs=("topline $first 1.0 both")
for seed in $seeds; do
    runs+=("pretrained_$seed $seed 0.1 both" "encoder_only_$seed $seed 0.1 encoder" "scratch_$seed $seed 0.1 none")
done
finetune() {  # name seed label_fraction pretrained-parts (both | encoder | none); its log in DIR/<name>.log
    local name=$1 init=()
    case $4 in
        both) init=(--set "encoder=$out/export_source" --set "decoder_export=$out/export_target") ;;
        encoder) init=(--set "encoder=$out/export_source" --set decoder_export=null) ;;
        none) init=(--set encoder=null --set decoder_export=null) ;;
    esac
    "$py" -m seqae finetune translate "$config" --run-dir "$out/$name" --set "train.seed=$2" \
        --set "label_fraction=$3" --set train.progress=false "${common[@]}" "${init[@]}" "${overrides[@]}" \
        > "$out/$name.log" 2>&1 \
        || { echo "fine-tuning $name failed; its log, $out/$name.log, ends:" >&2; tail -n 20 "$out/$name.log" >&2
             return 1; }
    echo "   $name: $(grep -o '"test_chrf": [0-9.]*' "$out/$name/metrics.json")"
}
running=0 failed=0
for spec in "${runs[@]}"; do
    # shellcheck disable=SC2086  # the spec's words are the arguments
    finetune $spec &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
done
while [ $running -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ $failed = 0 ] || { echo "a fine-tuning run failed (above)" >&2; exit 1; }

"$py" "$here/collect.py" "$out" $seeds
echo "== done: $out/metrics.json, $out/samples.md"
