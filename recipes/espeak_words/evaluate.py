"""Evaluate a trained speech run: its final metrics plus reconstructions of held-out utterances from z alone.

    python recipes/espeak_words/evaluate.py --run RUN_DIR --out DIR [--examples 3] [--audio]
        [--test MANIFEST --train MANIFEST]

Writes DIR/metrics.json (the run's metrics.json: heldout_mse, ap_z, ap_mean_frames, ap_downsampled, ...,
plus the files written here) and DIR/reconstructions/<n>_<label>.png: the held-out log-Mel (CMVN'd) above
the one the decoder generated from z. With --audio, also <n>_<label>.orig.wav / .rebuilt.wav through
Griffin-Lim (logmel features only). The PNGs need matplotlib; without it they are skipped with a note.

With --test (a split touched once, at the end: the run's own held-out split is then the dev split whose
metrics chose the configuration), the run's same-different keys are renamed `dev_*` (`dev_ap_z`, ...) and the test
split is scored: `ap_z`, `speaker_ap_z`, and the downsampled-frame baseline (10 frames, CMVN from the --train
manifest's words) on three feature sets (13 MFCCs, 40-bin log-Mel, 40-bin Kaldi fbank): `ap_baselines`,
`ap_best_baseline` (the highest), `best_baseline` and `ap_ratio_best_baseline` = ap_z / ap_best_baseline.

The librispeech and speech_commands recipes use this script too. Recipes are scripts: nothing imports this.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from seqae.apps.speech import write_reconstructions
from seqae.data.manifest import read_manifest
from seqae.data.speech import load_speech_features
from seqae.eval.speech import same_different_ap
from seqae.frontend.features import Cmvn, FeatureCache, FeatureExtractor
from seqae.frontend.summaries import downsampled_frames
from seqae.runs import load_run

BASELINES = {"mfcc13": {"kind": "mfcc", "n_mels": 40, "n_mfcc": 13}, "logmel40": {"kind": "logmel", "n_mels": 40},
             "fbank40": {"kind": "fbank", "n_mels": 40}}
"""The feature sets of the downsampled-frame baseline (25 ms windows, 10 ms hop, 16 kHz)."""
DEV_KEYS = ("ap_", "speaker_ap_", "heldout_")


def baseline_aps(train: Path, test: Path, cache_dir: Path) -> dict[str, float]:
    """Same-different AP (by word) of 10 downsampled CMVN'd frames of the test words, per feature set; CMVN
    statistics from the training words. Every file must be readable."""
    train_rows, test_rows = read_manifest(train), read_manifest(test)
    labels = [row.label for row in test_rows]
    result = {}
    for name, settings in BASELINES.items():
        extractor = FeatureExtractor(**settings)
        cache = FeatureCache(cache_dir, extractor.settings())
        cmvn = Cmvn.compute(load_speech_features(train_rows, extractor, cache=cache, strict=True)[0])
        feats = load_speech_features(test_rows, extractor, cache=cache, strict=True)[0]
        result[name] = same_different_ap(downsampled_frames([cmvn.normalize(x) for x in feats], n=10), labels)
    return result


def test_metrics(run, train: Path, test: Path, cache_dir: Path) -> dict:
    """The test split's keys (see the module docstring)."""
    data = run.features(test, max_len=run.config.data.max_len, strict=True)
    z = run.encode(data.features)
    labels, speakers = [r.label for r in data.rows], [r.speaker for r in data.rows]
    baselines = baseline_aps(train, test, cache_dir)
    best = max(baselines, key=baselines.get)
    ap_z = same_different_ap(z, labels)
    return {"ap_z": ap_z, "speaker_ap_z": same_different_ap(z, speakers), "test_words": len(labels),
            "test_classes": len(set(labels)), "ap_baselines": baselines, "best_baseline": best,
            "ap_best_baseline": baselines[best], "ap_ratio_best_baseline": ap_z / baselines[best]}


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
    parser.add_argument("--test", type=Path, help="the test manifest, scored once (the run's held-out split is dev)")
    parser.add_argument("--train", type=Path, help="with --test: the training manifest (the baselines' CMVN)")
    args = parser.parse_args()
    if (args.test is None) != (args.train is None):
        raise SystemExit("--test and --train go together")
    torch.set_num_threads(1)
    metrics_file = args.run / "metrics.json"
    if not metrics_file.is_file():
        raise SystemExit(f"{metrics_file}: not found (has `seqae pretrain` finished?)")
    metrics = json.loads(metrics_file.read_text())
    run = load_run(args.run)
    if args.test is not None:
        metrics = {f"dev_{k}" if k.startswith(DEV_KEYS) else k: v for k, v in metrics.items()}
        metrics.update(test_metrics(run, args.train, args.test, args.out / "baseline_features"))
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
    for key in ("heldout_mse", "dev_heldout_mse", "dev_ap_z", "ap_z", "ap_encoder_mean", "ap_mean_frames",
                "ap_downsampled", "speaker_ap_z", "ap_best_baseline", "ap_ratio_best_baseline"):
        if key in metrics:
            print(f"{key}: {metrics[key]:.4f}")
    print(f"wrote {args.out / 'metrics.json'} and {len(plots)} plots in {folder}")


if __name__ == "__main__":
    main()
