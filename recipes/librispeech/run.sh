#!/usr/bin/env bash
# LibriSpeech: manifests (local folder or hub) -> pretrain an utterance autoencoder on log-Mel frames -> evaluate.
#
#   recipes/librispeech/run.sh (--source ROOT | --hub) [--debug] [--out DIR] [--set KEY=VALUE ...]
#
# --source   a local LibriSpeech folder holding train-clean-100/ and dev-clean/ (as in the released archives)
# --hub      read openslr/librispeech_asr (clean) through `datasets` instead (needs the network or its cache)
# --debug    a tiny model and few steps on at most 64 / 16 utterances (end to end in well under a minute)
# --out      where everything goes (default runs/librispeech, or runs/librispeech-debug); a run is resumed
# --set      config overrides passed to `seqae pretrain`
# The final evaluation is DIR/metrics.json: heldout_mse, the same-different AP by speaker on dev-clean
# (speaker_ap_z against the mean-frame and downsampled-frame baselines), and reconstruction plots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
source_args=()
limits=()
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml; limits=(--max-train 64 --max-heldout 16) ;;
        --source) source_args=(--source "$2"); shift ;;
        --hub) source_args=(--hub) ;;
        --out) out=$2; shift ;;
        --set) overrides+=(--set "$2"); shift ;;
        *) echo "run.sh: unknown argument $1 (allowed: --source ROOT, --hub, --debug, --out DIR, --set KEY=VALUE)" >&2
           exit 2 ;;
    esac
    shift
done
if [ ${#source_args[@]} -eq 0 ]; then
    echo "run.sh: give --source ROOT (a local LibriSpeech folder) or --hub" >&2
    exit 2
fi
if [ -z "$out" ]; then
    out=runs/librispeech
    [ "$config" = "$here/debug.yaml" ] && out=runs/librispeech-debug
fi
mkdir -p "$out/data"

echo "== 1. prepare manifests -> $out/data"
[ -f "$out/data/heldout.jsonl" ] || "$py" "$here/prepare.py" --out "$out/data" "${source_args[@]}" "${limits[@]}"

echo "== 2. features + pretrain -> $out/run"
"$py" -m seqae pretrain "$config" --run-dir "$out/run" \
    --set "data.train=$out/data/train.jsonl" --set "data.heldout=$out/data/heldout.jsonl" "${overrides[@]}"

echo "== 3. evaluate -> $out"
"$py" "$root/recipes/espeak_words/evaluate.py" --run "$out/run" --out "$out"
echo "== done: $out/metrics.json"
