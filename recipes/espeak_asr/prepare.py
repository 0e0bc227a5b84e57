"""Spoken sentences with known transcripts for CTC fine-tuning: espeak-ng synthesis, or a LibriSpeech tree.

    python recipes/espeak_asr/prepare.py --out DIR [--train-speakers 40] [--heldout-speakers 5]
        [--test-speakers 10] [--train-sentences 40] [--eval-sentences 20] [--unlabelled-speakers 125]
        [--unlabelled-sentences 80] [--unlabelled-text /usr/share/trans/de-en] [--seed 0] [--jobs 2]
    python recipes/espeak_asr/prepare.py --out DIR --librispeech ROOT [--splits train-clean-100,dev-clean,test-clean]

Synthesis: sentences come from data/fortunes/train.txt (BSD, shipped), kept when they are 3-10 words of plain
letters (an apostrophe or hyphen inside a word, a comma between words, one final . ! or ?), with no word in
capitals, so what espeak-ng says is what the transcript says. The sentences are shuffled with --seed and cut
into disjoint pools for train, heldout and test. Speakers are distinct (accent, variant, pitch, speed) voices
drawn in order from random.Random(seed); train, heldout and test speakers are disjoint (entries 0.., then the
next ones), and each speaker reads its own --train-sentences (or --eval-sentences) of its split's pool, so
transcripts repeat across speakers but never across splits. Each file is

    espeak-ng -v ACCENT+VARIANT -p PITCH -s SPEED --stdout TEXT | sox -q -G -D -t wav - -r 16000 -c 1 -b 16 OUT.flac

with leading and trailing silence trimmed (no dither: byte-identical reruns).

Unlabelled audio (for pretraining only; its transcripts are kept in the manifest for provenance and never read by
the recipe): --unlabelled-speakers further voices (disjoint from the train, heldout and test voices) each read
--unlabelled-sentences sentences drawn from the English side of Debian's trans-de-en (--unlabelled-text, the Ding
dictionary's example sentences, filtered like the fortunes) and the fortunes left out of every pool. No unlabelled
sentence equals (case and punctuation aside) a train, heldout or test sentence: the audio is other sentences by
other speakers. Without the dictionary file only the left-over fortunes are used (prepare.json says which).

Output: DIR/audio/<speaker>/<speaker>_<n>.flac, DIR/{train,heldout,test,unlabelled}.jsonl (seqae manifests: path, text,
speaker, duration), DIR/speakers.jsonl and DIR/prepare.json. With --librispeech, the three manifests are written
from ROOT/<split> (seqae.data.corpora.librispeech_folder; problems listed in DIR/skipped.txt) and nothing is
synthesised. Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

from seqae.data.corpora import CorpusError, librispeech_folder
from seqae.data.manifest import ManifestRow, SkipReport, write_manifest

SENTENCES = Path(__file__).resolve().parents[2] / "data" / "fortunes" / "train.txt"
SAMPLE_RATE = 16000
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
PITCHES = tuple(range(25, 76, 5))
SPEEDS = tuple(range(130, 181, 10))
TRIM = ("silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")
PLAIN = re.compile(r"[A-Z][a-z]*(['-][a-z]+)*,?( [A-Za-z][a-z]*(['-][a-z]+)*,?)*[.!?]")
SPLITS = ("train", "heldout", "test")
SYNTHESISED = (*SPLITS, "unlabelled")
DING = Path("/usr/share/trans/de-en")


def plain(lines) -> list[str]:
    """The lines espeak-ng reads as written (see the module docstring), de-duplicated, in order."""
    lines = dict.fromkeys(line.strip() for line in lines)
    return [s for s in lines if PLAIN.fullmatch(s) and 3 <= len(s.split()) <= 10 and not s.endswith(",.")]


def plain_sentences(path: Path, seed: int) -> list[str]:
    """The sentences of `path` that espeak-ng reads as written, de-duplicated, shuffled with `seed`."""
    kept = plain(path.read_text(encoding="utf-8").splitlines())
    random.Random(seed).shuffle(kept)
    return kept


def dictionary_sentences(path: Path) -> list[str]:
    """The plain English example sentences of a Ding dictionary file (`German :: English` lines, alternatives
    separated by ` | ` and `; `), in file order."""
    parts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#") and " :: " in line:
                parts += [p for alt in line.split(" :: ", 1)[1].split(" | ") for p in alt.split("; ")]
    return plain(parts)


def _key(sentence: str) -> str:
    """A sentence without case and punctuation, to compare sentences across sources."""
    return " ".join(re.sub(r"[^a-z' ]", " ", sentence.lower()).split())


def voices(count: int, seed: int) -> list[tuple[str, str, int, int]]:
    """The first `count` distinct (accent, variant, pitch, speed) voices drawn from `seed`."""
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < count:
        voice = (rng.choice(ACCENTS), rng.choice(VARIANTS), rng.choice(PITCHES), rng.choice(SPEEDS))
        if voice not in seen:
            seen.add(voice)
            out.append(voice)
    return out


def speak(text: str, voice: tuple[str, str, int, int], out: Path) -> None:
    """Synthesise `text` with `voice` into the FLAC file `out` (written under a temporary name, then renamed)."""
    accent, variant, pitch, speed = voice
    espeak = ["espeak-ng", "-v", f"{accent}+{variant}", "-p", str(pitch), "-s", str(speed), "--stdout", text]
    tmp = out.with_name(f".{out.stem}.tmp.flac")
    sox = ["sox", "-q", "-G", "-D", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(tmp), *TRIM]
    speech = subprocess.run(espeak, capture_output=True, check=False)
    if speech.returncode != 0 or not speech.stdout:
        raise RuntimeError(f"espeak-ng failed for {text!r} {voice}: {speech.stderr.decode(errors='replace')}")
    conv = subprocess.run(sox, input=speech.stdout, capture_output=True, check=False)
    if conv.returncode != 0:
        raise RuntimeError(f"sox failed for {text!r} {voice}: {conv.stderr.decode(errors='replace')}")
    os.replace(tmp, out)


def synthesise(args: argparse.Namespace) -> dict:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"prepare.py needs {' and '.join(missing)} on PATH (Debian: apt-get install espeak-ng sox)")
    speakers = {"train": args.train_speakers, "heldout": args.heldout_speakers, "test": args.test_speakers}
    per_speaker = {"train": args.train_sentences, "heldout": args.eval_sentences, "test": args.eval_sentences}
    sentences = plain_sentences(SENTENCES, args.seed)
    pool_size = {s: min(per_speaker[s] * speakers[s], len(sentences) // 3) for s in SPLITS}
    start = {"train": 0, "heldout": pool_size["train"], "test": pool_size["train"] + pool_size["heldout"]}
    pools = {s: sentences[start[s]: start[s] + pool_size[s]] for s in SPLITS}
    table = voices(sum(speakers.values()) + args.unlabelled_speakers, args.seed)
    used = {_key(t) for s in SPLITS for t in pools[s]}
    leftover = [t for t in sentences if _key(t) not in used]
    text_source = ["data/fortunes/train.txt (left over)"]
    if args.unlabelled_speakers and args.unlabelled_text.is_file():
        extra = dictionary_sentences(args.unlabelled_text)
        random.Random(args.seed).shuffle(extra)
        leftover += [t for t in extra if _key(t) not in used]
        text_source.append(str(args.unlabelled_text))
    pools["unlabelled"] = list(dict.fromkeys(leftover))
    if args.unlabelled_speakers and not pools["unlabelled"]:
        sys.exit("prepare.py: no sentence is left for the unlabelled audio (every usable one is in train, heldout "
                 f"or test, and {args.unlabelled_text} is missing): install trans-de-en or pass "
                 "--unlabelled-speakers 0")
    speakers["unlabelled"], per_speaker["unlabelled"] = args.unlabelled_speakers, args.unlabelled_sentences
    jobs, first = {s: [] for s in SYNTHESISED}, 0
    for split in SYNTHESISED:
        for k in range(speakers[split]):
            spk, voice = f"spk{first + k:03d}", table[first + k]
            (args.out / "audio" / spk).mkdir(parents=True, exist_ok=True)
            pool = pools[split]
            for n in range(per_speaker[split]):
                text = pool[(k * per_speaker[split] + n) % len(pool)]
                jobs[split].append((text, spk, voice, args.out / "audio" / spk / f"{spk}_{n:03d}.flac"))
        first += speakers[split]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda job: speak(job[0], job[2], job[3]), [j for s in SYNTHESISED for j in jobs[s]]))
    for split in SYNTHESISED:
        rows = [ManifestRow(path=path, text=text, speaker=spk, duration=sf.info(str(path)).duration)
                for text, spk, _, path in jobs[split]]
        write_manifest(rows, args.out / f"{split}.jsonl")
    with open(args.out / "speakers.jsonl", "w", encoding="utf-8") as f:
        for i, (accent, variant, pitch, speed) in enumerate(table):
            f.write(json.dumps({"speaker": f"spk{i:03d}", "accent": accent, "variant": variant, "pitch": pitch,
                                "speed": speed}) + "\n")
    hours = {s: sum(sf.info(str(job[3])).duration for job in jobs[s]) / 3600 for s in SYNTHESISED}
    return {"source": "espeak-ng", "usable_sentences": len(sentences), "seed": args.seed,
            "unlabelled_text": text_source, **{f"{s}_speakers": speakers[s] for s in SYNTHESISED},
            **{f"{s}_sentences": len({job[0] for job in jobs[s]}) for s in SYNTHESISED},
            **{f"{s}_utterances": len(jobs[s]) for s in SYNTHESISED}, **{f"{s}_hours": hours[s] for s in SYNTHESISED},
            "unlabelled_to_train_duration": hours["unlabelled"] / hours["train"] if hours["train"] else None}


def librispeech(args: argparse.Namespace) -> dict:
    names = args.splits.split(",")
    if len(names) != 3:
        sys.exit(f"--splits: expected three comma-separated LibriSpeech splits (train,heldout,test), got {args.splits}")
    skips, report = SkipReport(), {"source": str(args.librispeech)}
    for split, name in zip(SPLITS, names):
        try:
            rows = librispeech_folder(args.librispeech, name, skips=skips)
        except CorpusError as err:
            sys.exit(str(err))
        write_manifest(rows, args.out / f"{split}.jsonl")
        report[f"{split}_utterances"] = len(rows)
    (args.out / "skipped.txt").write_text("".join(f"{p}\t{r}\n" for p, r in skips.skipped), encoding="utf-8")
    report["skipped"] = skips.num_skipped
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--librispeech", type=Path, help="a LibriSpeech folder: write manifests, synthesise nothing")
    parser.add_argument("--splits", default="train-clean-100,dev-clean,test-clean", help="with --librispeech")
    parser.add_argument("--train-speakers", type=int, default=40)
    parser.add_argument("--heldout-speakers", type=int, default=5)
    parser.add_argument("--test-speakers", type=int, default=10)
    parser.add_argument("--train-sentences", type=int, default=40, help="sentences each train speaker reads")
    parser.add_argument("--eval-sentences", type=int, default=20, help="sentences each heldout/test speaker reads")
    parser.add_argument("--unlabelled-speakers", type=int, default=125, help="voices of the unlabelled audio")
    parser.add_argument("--unlabelled-sentences", type=int, default=80, help="sentences each of them reads")
    parser.add_argument("--unlabelled-text", type=Path, default=DING, help="a Ding dictionary file (trans-de-en)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    args = parser.parse_args(argv)
    counts = (args.train_speakers, args.heldout_speakers, args.test_speakers, args.train_sentences, args.eval_sentences)
    if min(counts) < 1 or min(args.unlabelled_speakers, args.unlabelled_sentences) < 0:
        parser.error("speaker and sentence counts must be >= 1 (unlabelled ones >= 0)")
    args.out.mkdir(parents=True, exist_ok=True)
    report = librispeech(args) if args.librispeech else synthesise(args)
    (args.out / "prepare.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    counts = ", ".join(f"{report[s + '_utterances']} {s}" for s in SYNTHESISED if s + "_utterances" in report)
    print(f"wrote {counts} utterances to {args.out}")


if __name__ == "__main__":
    main()
