#!/usr/bin/env bash
# Speech Commands: manifests (local folder or hub) -> pretrain a spoken-word autoencoder -> same-different AP.
#
#   recipes/speech_commands/run.sh (--source ROOT | --hub) [--debug] [--out DIR] [--set KEY=VALUE ...]
#
# --source   a local Speech Commands folder (<label>/<speaker>_nohash_<n>.wav, validation_list.txt, testing_list.txt)
# --hub      read google/speech_commands (v0.02) through `datasets` instead (needs the network or its cache)
# --debug    a tiny model and few steps on at most 64 / 32 utterances (end to end in well under a minute)
# --out      where everything goes (default runs/speech_commands, or runs/speech_commands-debug); a run is resumed
# --set      config overrides passed to `seqae pretrain`
# Training uses the train split without its labels; the held-out split is the validation list (speakers not in
# train). The final evaluation is DIR/metrics.json: heldout_mse, ap_z (same word, by cosine of z) against
# ap_mean_frames and ap_downsampled, speaker_ap_*, and reconstruction plots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
config=$here/config.yaml
out=""
source_args=()
limits=(--max-train 40000 --max-heldout 2000)
overrides=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) config=$here/debug.yaml; limits=(--max-train 64 --max-heldout 32) ;;
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
    echo "run.sh: give --source ROOT (a local Speech Commands folder) or --hub" >&2
    exit 2
fi
if [ -z "$out" ]; then
    out=runs/speech_commands
    [ "$config" = "$here/debug.yaml" ] && out=runs/speech_commands-debug
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
