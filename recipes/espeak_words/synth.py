"""Synthesise a spoken-word corpus with espeak-ng: WORDS x SPEAKERS FLAC files (16 kHz mono) and a manifest.

    python recipes/espeak_words/synth.py --out DIR --words N --speakers M \
        [--word-offset K] [--speaker-offset J] [--seed S] [--jobs 2]

Words are ``WORDS[K:K+N]`` from the fixed list below; speakers are entries ``J..J+M-1`` of a table of
distinct (accent, variant, pitch, speed) voices drawn in order from ``random.Random(seed)``, so an entry
depends only on the seed and its index. Disjoint offsets give disjoint words and speakers: the recipe
trains on words 0-199 x speakers 0-29 and tests on words 200-249 x speakers 30-39.

Each file is ``espeak-ng -v ACCENT+VARIANT -p PITCH -s SPEED --stdout WORD | sox -q -G -D -t wav -
-r 16000 -c 1 -b 16 OUT.flac silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse`` (no dither, so
runs are byte-identical; leading and trailing silence trimmed). Output layout::

    DIR/<word>/<word>_<speaker>.flac   DIR/manifest.jsonl   DIR/speakers.jsonl   DIR/synth.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

from seqae.data.manifest import ManifestRow, write_manifest

SAMPLE_RATE = 16000
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
PITCHES = tuple(range(25, 76, 5))
SPEEDS = tuple(range(130, 201, 10))
TRIM = ("silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")

# Common English words, no two of which espeak-ng (en-us, en-gb) pronounces alike. Never reorder:
# word ranges select the train/test splits.
WORDS = """
    apple baby back bag ball bank basket bath beach bean bear bed bell belt bench bird black blanket blue
    boat body bone book boot bottle box bread bridge brother brown brush bucket butter button cake camera
    candle car card carpet carrot castle cat chain chair cheese cherry chicken child chin circle city clock
    cloud coat coffee college corner cotton country cousin cow cup curtain dance daughter desk dinner doctor
    dog dollar donkey door dragon dream dress drink drum duck eagle earth egg elbow engine evening face
    family farmer father feather finger fire fish flag floor flower forest fork fox friend frog fruit garden
    ghost gift girl glass glove goat gold grass green guitar hammer hand happy hat head heart hill horse
    hospital house island jacket jelly jungle kettle key king kitchen kite knife ladder lake lamp leaf lemon
    letter library lion lizard lunch magnet map market metal milk mirror money monkey moon morning mother
    mountain mouse mouth music needle nest night number ocean office orange oven owl paint palace paper
    parrot party pencil pepper piano picture pillow planet plate pocket pony potato pumpkin puppy purple
    queen rabbit radio rain river robot rocket roof rope ruler salad salt sand school scissors season shadow
    sheep shirt shoe shop shoulder silver sister skirt sky snake snow soap sock sofa soldier soup spider
    spoon spring square star station stone storm street sugar summer sun supper table teacher tiger toast
    today tomato tongue tooth towel tower town train tree truck turtle umbrella uncle valley village violin
    wagon wallet water window winter wolf woman yellow zebra zero above across after again almost always
    animal answer apron arrow autumn balloon banana barrel beetle biscuit blossom bubble cabbage cactus
    camel canoe captain carpenter cattle cement chimney cinema cobweb comet compass cookie crayon cricket
    crystal cucumber diamond dinosaur dolphin elephant emerald festival fountain giraffe glacier gravel
    hamster harbour helmet honey insect jigsaw kangaroo lantern lettuce lobster meadow melon microphone
    muffin napkin noodle octopus orchard ostrich paddle panda peanut pebble penguin pirate pizza pretzel
    puzzle raccoon raspberry ribbon saddle sandal sausage shovel skeleton sledge spinach squirrel stapler
    sunset sweater teapot telescope thunder tractor trumpet tunnel turkey unicorn vanilla vulture walnut
    whistle wizard yogurt
""".split()


def speaker_table(count: int, *, seed: int) -> list[tuple[str, str, int, int]]:
    """The first ``count`` distinct (accent, variant, pitch, speed) voices drawn from ``seed``."""
    rng = random.Random(seed)
    voices: list[tuple[str, str, int, int]] = []
    seen = set()
    while len(voices) < count:
        voice = (rng.choice(ACCENTS), rng.choice(VARIANTS), rng.choice(PITCHES), rng.choice(SPEEDS))
        if voice not in seen:
            seen.add(voice)
            voices.append(voice)
    return voices


def synthesise(word: str, voice: tuple[str, str, int, int], out: Path) -> None:
    """Speak ``word`` with ``voice`` into the FLAC file ``out`` (via a temporary name, then renamed)."""
    accent, variant, pitch, speed = voice
    espeak = ["espeak-ng", "-v", f"{accent}+{variant}", "-p", str(pitch), "-s", str(speed), "--stdout", word]
    tmp = out.with_name(f".{out.stem}.tmp.flac")
    sox = ["sox", "-q", "-G", "-D", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(tmp)]
    sox += TRIM
    speech = subprocess.run(espeak, capture_output=True, check=False)
    if speech.returncode != 0 or not speech.stdout:
        raise RuntimeError(f"espeak-ng failed for {word!r} {voice}: {speech.stderr.decode(errors='replace')}")
    conv = subprocess.run(sox, input=speech.stdout, capture_output=True, check=False)
    if conv.returncode != 0:
        raise RuntimeError(f"sox failed for {word!r} {voice}: {conv.stderr.decode(errors='replace')}")
    os.replace(tmp, out)


def tool_version(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--words", type=int, required=True, help="number of words")
    parser.add_argument("--speakers", type=int, required=True, help="number of speakers")
    parser.add_argument("--word-offset", type=int, default=0, help="index of the first word in WORDS")
    parser.add_argument("--speaker-offset", type=int, default=0, help="index of the first speaker")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker table")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2), help="parallel syntheses (1 or 2)")
    args = parser.parse_args(argv)
    if args.words < 1 or args.speakers < 1 or args.word_offset < 0 or args.speaker_offset < 0:
        parser.error("--words and --speakers must be >= 1, offsets >= 0")
    if args.word_offset + args.words > len(WORDS):
        parser.error(f"--word-offset + --words must be <= {len(WORDS)} (the size of the word list)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"synth.py needs {' and '.join(missing)} on PATH (Debian: apt-get install espeak-ng sox)")
    words = WORDS[args.word_offset : args.word_offset + args.words]
    table = speaker_table(args.speaker_offset + args.speakers, seed=args.seed)
    speakers = {f"spk{i:03d}": table[i] for i in range(args.speaker_offset, len(table))}
    jobs = []
    for word in words:
        (args.out / word).mkdir(parents=True, exist_ok=True)
        jobs += [(word, spk, args.out / word / f"{word}_{spk}.flac") for spk in speakers]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda job: synthesise(job[0], speakers[job[1]], job[2]), jobs))
    rows = []
    for word, spk, path in jobs:
        info = sf.info(str(path))
        if info.frames == 0:
            sys.exit(f"{path}: synthesis produced no audio")
        duration = info.frames / info.samplerate
        rows.append(ManifestRow(path=path, text=word, label=word, speaker=spk, duration=duration))
    write_manifest(rows, args.out / "manifest.jsonl")
    with open(args.out / "speakers.jsonl", "w", encoding="utf-8") as f:
        for spk, (accent, variant, pitch, speed) in speakers.items():
            voice = {"speaker": spk, "accent": accent, "variant": variant, "pitch": pitch, "speed": speed}
            f.write(json.dumps(voice) + "\n")
    meta = {
        "words": args.words, "speakers": args.speakers, "word_offset": args.word_offset,
        "speaker_offset": args.speaker_offset, "seed": args.seed,
        "espeak_ng": tool_version(["espeak-ng", "--version"]).split("  Data at:")[0],
        "sox": tool_version(["sox", "--version"]).split()[-1],
        "sox_effects": " ".join(TRIM),
    }
    (args.out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} files ({len(words)} words x {len(speakers)} speakers) to {args.out}")


if __name__ == "__main__":
    main()
