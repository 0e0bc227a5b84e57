"""Text reconstruction from z, scored per sentence and binned by length: position-aligned token accuracy, exact
match and BLEU (sacrebleu, on detokenised text). Lengths in pieces, bos and eos not counted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from seqae.data.sentences import TextSet, read_texts
from seqae.eval.metrics import group_by_bin, reconstruction_counts
from seqae.eval.tokens import reconstruct_ids

TEXT_BINS = ((1, 10), (11, 20), (21, 40), (41, 80))


@dataclass(frozen=True, kw_only=True)
class TextItem:
    length: int
    """Pieces of the reference (bos and eos not counted)."""
    correct: int
    """Position-aligned matching tokens (eos included)."""
    total: int
    """Reference tokens scored (pieces + eos)."""
    exact: bool
    reference: str
    hypothesis: str


def score_text(tokenizer, references: Sequence[Sequence[int]], generated: Sequence[Sequence[int]]) -> list[TextItem]:
    """Score each generated `[bos, ..., eos]` sequence against its reference (same layout)."""
    items = []
    for ref, gen in zip(references, generated, strict=True):
        counts = reconstruction_counts(torch.tensor([list(gen)]), torch.tensor([len(gen)]), torch.tensor([list(ref)]),
                                       torch.tensor([len(ref)]))
        items.append(TextItem(length=len(ref) - 2, correct=counts["correct"], total=counts["total"],
                              exact=bool(counts["exact"]), reference=tokenizer.decode(ref),
                              hypothesis=tokenizer.decode(gen)))
    return items


@torch.no_grad()
def reconstruct_text(run, sentences: Sequence[str], *, beam_size: int = 1, batch_size: int = 128) -> list[TextItem]:
    """Encode each sentence (cut to data.max_len as in training), decode it from z alone, score it."""
    items = []
    for i in range(0, len(sentences), batch_size):
        tokens, lengths = run.batch(sentences[i: i + batch_size])
        gen, gen_lengths = reconstruct_ids(run.model, tokens, lengths, max_len=run.config.data.max_len,
                                           beam_size=beam_size)
        items += score_text(run.tokenizer, [t[:n].tolist() for t, n in zip(tokens, lengths)],
                            [g[:n].tolist() for g, n in zip(gen, gen_lengths)])
    return items


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float | None:
    """sacrebleu's corpus BLEU (0–100), 13a tokenisation; None for no sentences. Orders with no n-grams at all
    (a set of sentences under 4 tokens) are left out (sacrebleu's effective_order) instead of giving 0."""
    if not hypotheses:
        return None
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as err:
        raise ImportError("BLEU needs sacrebleu (pip install 'sacrebleu==2.6.*')") from err
    return float(BLEU(effective_order=True).corpus_score(list(hypotheses), [list(references)]).score)


def summarize_text(items: Sequence[TextItem], bins: Sequence[tuple[int, int]] = TEXT_BINS) -> list[dict[str, Any]]:
    """One row per length bin, then "all": sequences, token_accuracy, exact_match, bleu (None when empty)."""
    groups = group_by_bin([it.length for it in items], bins)
    groups["all"] = list(range(len(items)))
    rows = []
    for name, idx in groups.items():
        chosen = [items[i] for i in idx]
        total = sum(it.total for it in chosen)
        rows.append({"bin": name, "sequences": len(chosen),
                     "token_accuracy": sum(it.correct for it in chosen) / total if total else None,
                     "exact_match": sum(it.exact for it in chosen) / len(chosen) if chosen else None,
                     "bleu": corpus_bleu([it.hypothesis for it in chosen], [it.reference for it in chosen])})
    return rows


def eval_texts(config, data: str | Path | None):
    """The sentences (and labels) to evaluate a text run on: `data` (.txt, .jsonl with text/label, or any corpus
    `load_text_lines` reads), by default the run's data.heldout."""
    from seqae.config import ConfigError
    from seqae.data.text import load_text_lines

    d = config.data
    source = data if data is not None else d.heldout
    if source is None:
        raise ConfigError("data.heldout is null in the run's config (held out from data.train): give --data FILE")
    if Path(source).suffix.lower() in (".txt", ".jsonl") and Path(source).is_file():
        return read_texts(source, text_column=d.text_column)
    if data is not None and not Path(source).exists():
        raise FileNotFoundError(f"{source}: file not found")
    lines, stats = load_text_lines(str(source), split=d.heldout_split, text_column=d.text_column,
                                   hub_config=d.hub_config, encoding_errors=d.encoding_errors)
    return TextSet(texts=lines, labels=None, line_numbers=[], skipped_empty=stats.empty_skipped)
