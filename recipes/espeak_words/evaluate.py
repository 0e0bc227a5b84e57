"""Evaluate a trained speech run: its final metrics plus reconstructions of held-out utterances from z alone.

    python recipes/espeak_words/evaluate.py --run RUN_DIR --out DIR [--examples 3] [--audio]

Writes DIR/metrics.json (the run's metrics.json: heldout_mse, ap_z, ap_mean_frames, ap_downsampled, ...,
plus the files written here) and DIR/reconstructions/<n>_<label>.png: the held-out log-Mel (CMVN'd) above
the one the decoder generated from z. With --audio, also <n>_<label>.orig.wav / .rebuilt.wav through
Griffin-Lim (logmel features only). The PNGs need matplotlib; without it they are skipped with a note.
The librispeech and speech_commands recipes use this script too. Recipes are scripts: nothing imports this.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from seqae.apps.speech import write_reconstructions
from seqae.runs import load_run


def pick_examples(rows, count: int) -> list[int]:
    """Indices of up to `count` held-out rows, one per label (or speaker) where possible, in order."""
    chosen, seen = [], set()
    for i, row in enumerate(rows):
        key = row.label or row.speaker or i
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == count:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the run directory of `seqae pretrain`")
    parser.add_argument("--out", type=Path, required=True, help="where metrics.json and reconstructions/ go")
    parser.add_argument("--examples", type=int, default=3, help="held-out utterances to reconstruct")
    parser.add_argument("--audio", action="store_true", help="also write Griffin-Lim audio of each example")
    args = parser.parse_args()
    torch.set_num_threads(1)
    metrics_file = args.run / "metrics.json"
    if not metrics_file.is_file():
        raise SystemExit(f"{metrics_file}: not found (has `seqae pretrain` finished?)")
    metrics = json.loads(metrics_file.read_text())
    run = load_run(args.run)
    rows = run.heldout_rows()
    rows = [rows[i] for i in pick_examples(rows, args.examples)]
    names = [re.sub(r"[^A-Za-z0-9_-]+", "_", f"{n}_{row.label or row.speaker or Path(row.path).stem}")[:60]
             for n, row in enumerate(rows)]
    folder = args.out / "reconstructions"
    audio = args.audio and run.extractor.kind == "logmel"
    try:
        written = write_reconstructions(run, rows, folder, audio=audio, names=names, max_len=run.config.data.max_len)
    except ImportError as err:
        print(f"note: {err}; skipping the reconstruction plots")
        written = []
    plots = [str(item["png"]) for item in written]
    sounds = [str(wav) for item in written for wav in item["wavs"]]
    lengths = [(item["rebuilt_frames"], item["frames"]) for item in written]
    metrics.update(reconstruction_plots=plots, reconstruction_audio=sounds,
                   reconstruction_lengths=[{"rebuilt": a, "original": b} for a, b in lengths])
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for key in ("heldout_mse", "ap_z", "ap_encoder_mean", "ap_mean_frames", "ap_downsampled", "speaker_ap_z"):
        if key in metrics:
            print(f"{key}: {metrics[key]:.4f}")
    print(f"wrote {args.out / 'metrics.json'} and {len(plots)} plots in {folder}")


if __name__ == "__main__":
    main()
