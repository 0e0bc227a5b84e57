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

from seqae.frontend.audio import write_audio
from seqae.eval.speech import griffin_lim, plot_reconstruction
from seqae.tasks.speech import load_speech_run


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
    task = load_speech_run(args.run)
    indices = pick_examples(task.data.heldout_rows, args.examples)
    originals = [task.data.heldout[i] for i in indices]
    rebuilt = task.reconstruct(originals)
    folder = args.out / "reconstructions"
    folder.mkdir(parents=True, exist_ok=True)
    plots, sounds = [], []
    for n, (i, x, y) in enumerate(zip(indices, originals, rebuilt)):
        row = task.data.heldout_rows[i]
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{n}_{row.label or row.speaker or Path(row.path).stem}")[:60]
        title = f"{row.label or row.text or ''} ({row.speaker or Path(row.path).name}): held out, rebuilt from z"
        try:
            plots.append(str(plot_reconstruction(x, y, folder / f"{name}.png", title)))
        except ImportError as err:
            print(f"note: {err}; skipping the reconstruction plots")
            break
        if args.audio and task.extractor.kind == "logmel":
            for suffix, feats in (("orig", x), ("rebuilt", y)):
                path = folder / f"{name}.{suffix}.wav"
                write_audio(path, griffin_lim(feats, task.extractor, cmvn=task.data.cmvn), task.extractor.sample_rate)
                sounds.append(str(path))
    lengths = [(y.shape[0], x.shape[0]) for x, y in zip(originals, rebuilt)]
    metrics.update(reconstruction_plots=plots, reconstruction_audio=sounds,
                   reconstruction_lengths=[{"rebuilt": a, "original": b} for a, b in lengths])
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for key in ("heldout_mse", "ap_z", "ap_encoder_mean", "ap_mean_frames", "ap_downsampled", "speaker_ap_z"):
        if key in metrics:
            print(f"{key}: {metrics[key]:.4f}")
    print(f"wrote {args.out / 'metrics.json'} and {len(plots)} plots in {folder}")


if __name__ == "__main__":
    main()
