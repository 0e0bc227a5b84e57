#!/usr/bin/env bash
# espeak_asr: does speech-autoencoder pretraining on unlabelled audio help CTC recognition with few labels?
# Spoken sentences -> pretrain speech autoencoders with three objectives on the unlabelled audio plus the training
# audio (never a transcript) -> export their encoders -> CTC fine-tuning on 2% and 10% of the transcripts,
# pretrained against the same architecture from random weights, over seeds; a topline on all transcripts.
#
#   recipes/espeak_asr/run.sh [--debug] [--out DIR] [--data DIR] [--seeds "0 1 2"] [--objectives "ae neighbours
#                             frames"] [--jobs 2] [--set KEY=VALUE ...] [--pretrain-set KEY=VALUE ...]
#
# full          synthesise 1,600 train utterances (40 speakers), 100 heldout (5 other speakers), 200 test (10 other
#               speakers, other sentences) and 10,000 unlabelled ones (125 other speakers, other sentences, over 5x
#               the train audio) with espeak-ng and sox (kept in DIR/data and reused), then train
# --debug       a handful of utterances, tiny step counts: end to end in about a minute, every key present
# --data        DIR/{train,heldout,test}.jsonl manifests (path, text, speaker) instead of synthesis, and
#               DIR/unlabelled.jsonl if present (audio for pretraining only), e.g. prepare.py --librispeech
# --objectives  the pretraining objectives compared (default all three; see README): ae (the plain sequence
#               autoencoder), neighbours (data.targets: neighbours), frames (ae + model.frame_prediction_weight)
# --seeds       the seeds of every pretrained-vs-scratch pair (default "0 1 2"); the first also selects the
#               objective (on the heldout split) and runs the topline
# --jobs        runs at a time (default 2: one thread each on a 2-core machine)
# --set         overrides for every fine-tuning run (seqae finetune asr; see config.yaml)
# --pretrain-set overrides for every pretraining run (seqae pretrain; see pretrain.yaml)
# --out         where everything goes (default runs/espeak_asr, or runs/espeak_asr-debug); runs are resumed
# Result: DIR/metrics.json (wer_topline, cer_topline; for F in 0.02 0.1 wer/cer _pretrained_F, _scratch_F as means
# over seeds with _seeds lists; the frozen-encoder probe at 0.02; the objectives' heldout table) and
# DIR/results.md (the tables of the README).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
out=""
data=""
debug=0
seeds="0 1 2"
objectives="ae neighbours frames"
jobs=2
overrides=()
pretrain_overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) debug=1 ;;
        --out) out=$2; shift ;;
        --data) data=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --objectives) objectives=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        --pretrain-set) pretrain_overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --debug, --out DIR, --data DIR, --seeds LIST," \
                "--objectives LIST, --jobs N, --set KEY=VALUE, --pretrain-set KEY=VALUE)" >&2
           exit 2 ;;
    esac
    shift
done
for objective in $objectives; do
    case $objective in ae|neighbours|frames) ;; *)
        echo "run.sh: --objectives: unknown objective $objective (allowed: ae, neighbours, frames)" >&2; exit 2 ;;
    esac
done
[ -n "$objectives" ] && [ -n "$seeds" ] || { echo "run.sh: --objectives and --seeds must not be empty" >&2; exit 2; }
[ -n "$out" ] || { out=runs/espeak_asr; [ $debug = 1 ] && out=runs/espeak_asr-debug; }
mkdir -p "$out"
config=$here/config.yaml topline=$here/topline.yaml
[ $debug = 1 ] && config=$here/debug.yaml topline=$here/debug.yaml

if [ -z "$data" ]; then
    data=$out/data
    echo "== 1. synthesise sentences with espeak-ng -> $data"
    if [ ! -f "$data/unlabelled.jsonl" ]; then
        if [ $debug = 1 ]; then
            "$py" "$here/prepare.py" --out "$data" --train-speakers 6 --heldout-speakers 2 --test-speakers 2 \
                --train-sentences 8 --eval-sentences 3 --unlabelled-speakers 4 --unlabelled-sentences 6
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
# Pretraining reads the training audio and the unlabelled audio (paths are relative to $data); no transcript.
cat "$data/train.jsonl" > "$data/pretrain.jsonl"
[ -f "$data/unlabelled.jsonl" ] && cat "$data/unlabelled.jsonl" >> "$data/pretrain.jsonl"

# Runs `jobs` at a time: `submit NAME COMMAND...` starts one (its log in $out/logs/NAME.log), `drain` waits for all.
mkdir -p "$out/logs"
running=0 failed=0
submit() {
    local name=$1; shift
    { "$@" > "$out/logs/$name.log" 2>&1 && echo "   $name: done" ; } \
        || { echo "$name failed; its log, $out/logs/$name.log, ends:" >&2; tail -n 20 "$out/logs/$name.log" >&2
             return 1; } &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
}
drain() {
    while [ $running -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
    [ $failed = 0 ] || { echo "a run failed (above)" >&2; exit 1; }
}

pretrain_debug=()
[ $debug = 1 ] && pretrain_debug=(--set train.max_steps=12 --set train.eval_every=0 --set train.checkpoint_every=12
                                  --set data.eval_sentences=8 --set model.hidden_dim=32 --set model.decoder_dim=32)
pretrain() {  # objective [overrides]: DIR/pretrain_<objective> -> DIR/export_<objective>
    local objective=(--set data.targets=self --set model.frame_prediction_weight=0)
    [ "$1" = neighbours ] && objective=(--set data.targets=neighbours --set model.frame_prediction_weight=0)
    [ "$1" = frames ] && objective=(--set data.targets=self)  # pretrain.yaml's frame_prediction_weight
    "$py" -m seqae pretrain "$here/pretrain.yaml" --run-dir "$out/pretrain_$1" --set train.progress=false \
        --set "data.train=$data/pretrain.jsonl" --set "data.heldout=$data/heldout.jsonl" \
        --set "features.cache_dir=$out/features" "${objective[@]}" "${pretrain_debug[@]}" "${pretrain_overrides[@]}" \
        "${@:2}"
    "$py" -m seqae export "$out/pretrain_$1" "$out/export_$1" --force
}
# Fine-tuning: runs named REGIME-INIT-FRACTION-sSEED (regime full or frozen; init an objective or scratch).
common=(--set "data.train=$data/train.jsonl" --set "data.heldout=$data/heldout.jsonl"
        --set "data.test=$data/test.jsonl" --set "data.feature_cache=$out/features" --set train.progress=false)
finetune() {  # regime init fraction seed
    local init=(--set encoder=null --set "architecture=$out/export_arch") regime=() file=$config
    [ "$2" = scratch ] || init=(--set "encoder=$out/export_$2" --set architecture=null)
    [ "$1" = frozen ] && regime=(--set freeze_encoder=true --set layer_weights=true)
    [ "$3" = 1.0 ] && file=$topline
    "$py" -m seqae finetune asr "$file" --run-dir "$out/ft/$1-$2-$3-s$4" --set "train.seed=$4" \
        --set "label_fraction=$3" "${init[@]}" "${regime[@]}" "${common[@]}" "${overrides[@]}"
}
first=${seeds%% *}

echo "== 2. features, CMVN and the architecture (one step of pretraining, for the scratch runs) -> $out/export_arch"
pretrain arch --set train.max_steps=1 --set train.checkpoint_every=1 --set data.eval_sentences=8 \
    > "$out/logs/pretrain_arch.log" 2>&1 || { tail -n 20 "$out/logs/pretrain_arch.log" >&2; exit 1; }

echo "== 3. pretraining per objective ($objectives) on audio alone; the topline and the scratch runs -> $out"
for objective in $objectives; do submit "pretrain_$objective" pretrain "$objective"; done
submit "full-scratch-1.0-s$first" finetune full scratch 1.0 "$first"
for seed in $seeds; do
    for fraction in 0.02 0.1; do submit "full-scratch-$fraction-s$seed" finetune full scratch "$fraction" "$seed"; done
    submit "frozen-scratch-0.02-s$seed" finetune frozen scratch 0.02 "$seed"
done
drain

echo "== 4. each objective at 2% labels (seed $first), fully fine-tuned and frozen -> $out/ft"
for objective in $objectives; do
    submit "full-$objective-0.02-s$first" finetune full "$objective" 0.02 "$first"
    submit "frozen-$objective-0.02-s$first" finetune frozen "$objective" 0.02 "$first"
done
drain

best=$("$py" "$here/collect.py" "$out" --select --objectives "$objectives" --seed "$first")
echo "== 5. the objective with the lowest heldout CER at 2% labels (seed $first): $best; its other runs"
for seed in $seeds; do
    for fraction in 0.02 0.1; do
        [ -f "$out/ft/full-$best-$fraction-s$seed/metrics.json" ] \
            || submit "full-$best-$fraction-s$seed" finetune full "$best" "$fraction" "$seed"
    done
    [ -f "$out/ft/frozen-$best-0.02-s$seed/metrics.json" ] \
        || submit "frozen-$best-0.02-s$seed" finetune frozen "$best" 0.02 "$seed"
done
drain

"$py" "$here/collect.py" "$out" --objectives "$objectives" --seeds "$seeds" --best "$best"
echo "== done: $out/metrics.json, $out/results.md"
