"""Characters for CTC: transcript normalisation, the character vocabulary, greedy decoding, WER and CER.

Dimension letters: B batch, T output frames, V classes (blank + characters).
Class 0 is the CTC blank; characters follow in sorted order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

BLANK_ID = 0
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_OUTSIDE = re.compile(r"[^a-z' ]+")


def normalize_transcript(text: str) -> str:
    """Lowercase, typographic apostrophes to ', anything but a-z, ' and space to a space, spaces collapsed
    ("Old-world software!" -> "old world software"); quotes around words are dropped, "don't" keeps its '."""
    text = _OUTSIDE.sub(" ", text.lower().translate(_APOSTROPHES))
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


@dataclass(frozen=True)
class CharVocab:
    """The characters a CTC head predicts; id 0 is the blank, characters are ids 1.. in sorted order."""

    chars: tuple[str, ...]

    @classmethod
    def from_transcripts(cls, texts: Iterable[str]) -> CharVocab:
        """Every character of the (normalised) transcripts."""
        chars = sorted(set("".join(texts)))
        if not chars:
            raise ValueError("no characters in the transcripts")
        return cls(tuple(chars))

    @property
    def num_classes(self) -> int:
        """V: blank + characters."""
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`; ValueError naming a character outside the vocabulary."""
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary {''.join(self.chars)!r}")
        return [index[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Characters of ids 1.. (blanks skipped); collapse CTC repeats first with `ctc_greedy_decode`."""
        return "".join(self.chars[i - 1] for i in ids if i != BLANK_ID)


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor, *, blank: int = BLANK_ID) -> list[list[int]]:
    """log_probs: [B, T, V], lengths: [B] -> per row the best path's labels with repeats merged and blanks
    removed, reading only the first lengths[b] frames."""
    best = log_probs.argmax(-1).cpu()  # (B, T)
    out = []
    for row, n in zip(best, lengths.cpu().tolist()):
        path = row[:n]
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]  # first of each run
        out.append([int(t) for t in path[keep & (path != blank)]])
    return out


def ctc_min_frames(labels: Sequence[int]) -> int:
    """Fewest output frames a CTC alignment of `labels` needs: one per label, plus a blank between repeats."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus WER and CER (jiwer: edit operations over all reference words / characters), plus counts."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return {"wer": float("nan"), "cer": float("nan"), "utterances": 0}
    if any(not r.strip() for r in references):
        raise ValueError("an empty reference transcript has no defined error rate")
    words = jiwer.process_words(list(references), list(hypotheses))
    chars = jiwer.process_characters(list(references), list(hypotheses))
    return {"wer": float(words.wer), "cer": float(chars.cer), "utterances": len(references),
            "reference_words": sum(len(r.split()) for r in references)}
