"""Token noises for denoising sequence autoencoders (BART, T5, TSDAE).

A sequence is a 1-D LongTensor laid out as ``[bos, t1, ..., tn, eos]``; bos and eos are each
optional, and pad ids may follow eos. Every noise rewrites only the *body* ``t1..tn`` and returns a
new tensor with the same head (bos) and tail (eos + trailing pad). A bos, eos or pad id inside the
body is malformed input and raises a ValueError naming its position.

Counts are exact per sequence: a ratio ``r`` over ``n`` units acts on ``round(r * n)`` of them,
where ``round`` is Python's (half to even, the same as numpy and T5). Randomness comes only from
the ``generator`` argument. "Random tokens" are drawn from the regular ids ``[first_regular, V)``.

Legend: ``N`` body length in tokens, ``V`` vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class SpecialIds:
    """Special token ids (the same values as ``seqae.frontend.tokenizer``); ids below ``first_regular``
    are never drawn as random tokens."""

    pad: int = 0
    unk: int = 1
    bos: int = 2
    eos: int = 3
    mask: int = 4
    first_regular: int = 5

    def __post_init__(self) -> None:
        ids = (self.pad, self.unk, self.bos, self.eos, self.mask)
        if len(set(ids)) != len(ids):
            raise ValueError(f"SpecialIds must be distinct, got {self}")
        if self.first_regular <= max(ids):
            raise ValueError(f"SpecialIds.first_regular must exceed every special id, got {self}")


# ---------------------------------------------------------------- helpers


def _split(x: Tensor, special: SpecialIds) -> tuple[Tensor, Tensor, Tensor]:
    """Split ``x`` into (head, body, tail): head is ``[bos]`` or empty, tail is eos + pads."""
    if not isinstance(x, Tensor) or x.dim() != 1 or x.dtype != torch.long:
        got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"token noise expects a 1-D LongTensor [bos, t1..tn, eos], got {got}")
    ids = x.tolist()  # a sentence is short: Python scans it faster than a chain of tiny tensor ops
    end = len(ids)
    while end > 0 and ids[end - 1] == special.pad:
        end -= 1
    if end > 0 and ids[end - 1] == special.eos:
        end -= 1
    start = 1 if ids and ids[0] == special.bos else 0
    reserved = (special.bos, special.eos, special.pad)
    for pos in range(start, end):
        if ids[pos] in reserved:
            raise ValueError(
                f"special id {ids[pos]} at position {pos} inside the body of a token sequence of "
                f"length {len(ids)}; expected [bos, t1..tn, eos] with pad only after eos"
            )
    return x[:start], x[start:end], x[end:]


def _join(head: Tensor, body: Tensor, tail: Tensor) -> Tensor:
    return torch.cat([head, body.to(torch.long), tail])


def _count(ratio: float, n: int, name: str = "ratio") -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {ratio}")
    return round(ratio * n)


def _random_ids(k: int, vocab_size: int | None, special: SpecialIds, generator: torch.Generator) -> Tensor:
    """k ids uniform over ``[first_regular, vocab_size)``."""
    if vocab_size is None:
        raise ValueError("vocab_size is required to draw random tokens")
    if vocab_size <= special.first_regular:
        raise ValueError(f"vocab_size must exceed first_regular={special.first_regular}, got {vocab_size}")
    return torch.randint(special.first_regular, vocab_size, (k,), generator=generator)


def place_spans(lengths: Tensor, total: int, *, generator: torch.Generator) -> Tensor:
    """Place spans of ``lengths`` (in this order) without overlap in ``[0, total)``, uniformly.

    The free units and the spans form ``total - sum(lengths) + k`` items; choosing which ``k`` of
    them are spans uniformly at random gives every non-overlapping arrangement (spans in the given
    order, adjacent spans allowed) the same probability. Zero-length spans mark an insertion point.

    lengths: [k] non-negative ints with ``sum <= total``. Returns starts: [k], non-decreasing.
    """
    k = lengths.numel()
    free = total - int(lengths.sum())
    if free < 0:
        raise ValueError(f"spans of total length {int(lengths.sum())} do not fit in {total} units")
    slots = torch.randperm(free + k, generator=generator)[:k].sort().values  # (k,)
    before = torch.cumsum(lengths, 0) - lengths  # (k,) units taken by earlier spans
    return slots - torch.arange(k) + before


# ---------------------------------------------------------------- BART span masking


def span_mask_plan(
    num_units: int, *, ratio: float, poisson_lambda: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Plan BART spans over ``num_units`` units; returns (starts, lengths), both [k], by start.

    Exactly ``round(ratio * num_units)`` units are covered: span lengths are drawn from
    Poisson(poisson_lambda) until their sum reaches the budget, the last one is clipped to it,
    and the spans are placed without overlap uniformly (``place_spans``). Zero-length draws made
    while filling the budget stay in the plan as insertion points (length 0).
    """
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda must be > 0, got {poisson_lambda}")
    budget = _count(ratio, num_units)
    lengths: list[int] = []
    total = 0
    while total < budget:
        size = int((budget - total) / poisson_lambda) + 2
        draws = torch.poisson(torch.full((size,), float(poisson_lambda)), generator=generator)
        for d in draws.long().tolist():
            d = min(d, budget - total)
            lengths.append(d)
            total += d
            if total == budget:
                break
    lens = torch.tensor(lengths, dtype=torch.long)
    return place_spans(lens, num_units, generator=generator), lens


def _unit_bounds(body: Tensor, unit: str, word_start: Tensor | None) -> Tensor:
    """Token offsets of unit boundaries: [num_units + 1]."""
    n = body.numel()
    if unit == "token":
        return torch.arange(n + 1)
    if unit != "word":
        raise ValueError(f"unit must be 'word' or 'token', got {unit!r}")
    if word_start is None:
        raise ValueError("unit='word' needs word_start (BoolTensor[V]); pass it or use unit='token'")
    if n and int(body.max()) >= word_start.numel():
        raise ValueError(f"token id {int(body.max())} is outside word_start of size {word_start.numel()}")
    is_start = word_start.to(torch.bool)[body].clone()  # (N,)
    if n:
        is_start[0] = True
    return torch.cat([is_start.nonzero().flatten(), torch.tensor([n])])


def span_mask(
    x: Tensor,
    *,
    generator: torch.Generator,
    ratio: float = 0.3,
    poisson_lambda: float = 3.0,
    unit: Literal["word", "token"] = "word",
    mode: Literal["single_mask", "mask_per_token", "delete"] = "single_mask",
    random_ratio: float = 0.1,
    vocab_size: int | None = None,
    word_start: Tensor | None = None,
    special: SpecialIds = SpecialIds(),
) -> Tensor:
    """BART text infilling: mask exactly ``round(ratio * units)`` words (or tokens) in spans.

    x: [N+2] ``[bos, body, eos]``; word_start: BoolTensor[V], True where a piece begins a word
    (the first body token always begins one). Each span becomes one mask (``single_mask``), one
    mask per token (``mask_per_token``) or nothing (``delete``, which may empty the body at
    ratio 1). Each non-empty span independently gets random tokens instead of masks with
    probability ``random_ratio`` (one random token with ``single_mask``, one per token with
    ``mask_per_token``; must be 0 with ``delete``). Zero-length spans insert one mask.
    Returns a new LongTensor.
    """
    if mode not in ("single_mask", "mask_per_token", "delete"):
        raise ValueError(f"mode must be 'single_mask', 'mask_per_token' or 'delete', got {mode!r}")
    if mode == "delete" and random_ratio != 0:
        raise ValueError(f"random_ratio must be 0 with mode='delete', got {random_ratio}")
    if not 0.0 <= random_ratio <= 1.0:
        raise ValueError(f"random_ratio must be in [0, 1], got {random_ratio}")
    if random_ratio > 0 and vocab_size is None:
        raise ValueError("span_mask with random_ratio > 0 needs vocab_size to draw random tokens")
    head, body, tail = _split(x, special)
    bounds = _unit_bounds(body, unit, word_start)
    starts, lengths = span_mask_plan(
        bounds.numel() - 1, ratio=ratio, poisson_lambda=poisson_lambda, generator=generator
    )
    # per span, not round(random_ratio * spans): with a few spans per sequence rounding would be biased
    is_random = (torch.rand(lengths.numel(), generator=generator) < random_ratio) & (lengths > 0)
    pieces, prev = [head], 0
    for s, l, rnd in zip(starts.tolist(), lengths.tolist(), is_random.tolist()):
        a, b = int(bounds[s]), int(bounds[s + l])
        pieces.append(body[prev:a])
        width = 1 if (mode == "single_mask" or l == 0) else (b - a if mode == "mask_per_token" else 0)
        fill = _random_ids(width, vocab_size, special, generator) if rnd else torch.full((width,), special.mask)
        pieces.append(fill)
        prev = b
    pieces += [body[prev:], tail]
    return torch.cat(pieces)


# ---------------------------------------------------------------- T5 span corruption


def _t5_counts(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) exactly as T5's ``random_spans_noise_mask`` computes them."""
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_span_length < 1.0:
        raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length}")
    if length < 2:  # T5 pads the length to 2, and truncating its mask leaves no noise
        return 0, 0
    noise = min(max(round(length * noise_density), 1), length - 1)
    spans = max(round(noise / mean_span_length), 1)
    return noise, min(spans, length - noise)  # T5 would crash with more spans than kept tokens


def t5_lengths(raw_length: int, noise_density: float = 0.15, mean_span_length: float = 3.0) -> tuple[int, int]:
    """(inputs_len, targets_len) that T5 span corruption makes from ``raw_length`` body tokens.

    T5's convention: inputs = kept tokens + one sentinel per span + eos; targets = noise tokens +
    one sentinel per span + eos (no bos anywhere). ``t5_lengths(568) == (512, 114)``. Our tensors
    also carry the input's bos (and any trailing pad), which these counts leave out. The clipping
    of ``_t5_counts`` (>= 1 noise token and span for 2+ tokens) is applied, so this matches
    ``t5_span_corruption`` for every length; T5's own formula agrees for all realistic lengths.
    """
    noise, spans = _t5_counts(raw_length, noise_density, mean_span_length)
    return raw_length - noise + spans + 1, noise + spans + 1


def t5_raw_length_for_inputs(
    inputs_len: int, noise_density: float = 0.15, mean_span_length: float = 3.0
) -> int:
    """Largest raw body length whose corrupted inputs (with eos) fit in ``inputs_len``: 512 -> 568.

    T5's ``compute_input_and_target_lengths`` without its density-0.5 tweak of the targets; the
    targets length is ``t5_lengths(raw)[1]``. inputs_len grows by 0-2 per raw token, so the scan
    is exact.
    """
    if t5_lengths(0, noise_density, mean_span_length)[0] > inputs_len:
        raise ValueError(f"inputs_len must be >= 1 (room for eos), got {inputs_len}")
    raw = 0
    while t5_lengths(raw + 1, noise_density, mean_span_length)[0] <= inputs_len:
        raw += 1
    return raw


def _segment(num_items: int, num_segments: int, generator: torch.Generator) -> Tensor:
    """Random split of ``num_items`` into ``num_segments`` positive lengths (T5's segmentation)."""
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1].sort().values + 1
    edges = torch.cat([torch.tensor([0]), cuts, torch.tensor([num_items])])
    return edges.diff()  # (num_segments,)


def t5_noise_mask(
    length: int, *, noise_density: float, mean_span_length: float, generator: torch.Generator
) -> Tensor:
    """T5's ``random_spans_noise_mask``: BoolTensor[length], True on noise; starts with kept tokens."""
    noise, spans = _t5_counts(length, noise_density, mean_span_length)
    if spans == 0:
        return torch.zeros(length, dtype=torch.bool)
    noise_lens = _segment(noise, spans, generator)
    keep_lens = _segment(length - noise, spans, generator)
    interleaved = torch.stack([keep_lens, noise_lens], 1).flatten()  # (2 * spans,)
    run_starts = torch.zeros(length, dtype=torch.long)
    run_starts[torch.cumsum(interleaved, 0)[:-1]] = 1
    return torch.cumsum(run_starts, 0) % 2 == 1  # (length,) odd runs are noise


def t5_span_corruption(
    x: Tensor,
    *,
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    sentinel_ids: Sequence[int] | None = None,
    vocab_size: int | None = None,
    special: SpecialIds = SpecialIds(),
) -> tuple[Tensor, Tensor]:
    """T5 span corruption of ``x``: [N+2]; returns (inputs, targets), both in x's layout.

    inputs = kept tokens with each noise span replaced by its sentinel; targets = each sentinel
    followed by its span (``[bos, s0, span0, s1, span1, ..., eos]``: eos and no closing sentinel,
    as in T5). Sentinels are ``sentinel_ids`` in order, or count down from ``vocab_size - 1`` as
    in T5 (the caller keeps those ids out of the body). Bodies under 2 tokens get no noise.
    """
    head, body, tail = _split(x, special)
    is_noise = t5_noise_mask(
        body.numel(), noise_density=noise_density, mean_span_length=mean_span_length, generator=generator
    )
    values, counts = torch.unique_consecutive(is_noise, return_counts=True)
    sentinels = _sentinels(int(values.sum()), sentinel_ids, vocab_size, special)
    inputs, targets, pos, j = [head], [head], 0, 0
    for noisy, count in zip(values.tolist(), counts.tolist()):
        run = body[pos : pos + count]
        pos += count
        if noisy:
            inputs.append(sentinels[j : j + 1])
            targets += [sentinels[j : j + 1], run]
            j += 1
        else:
            inputs.append(run)
    return torch.cat(inputs + [tail]), torch.cat(targets + [tail])


def _sentinels(k: int, sentinel_ids: Sequence[int] | None, vocab_size: int | None, special: SpecialIds) -> Tensor:
    if sentinel_ids is None:
        if vocab_size is None:
            raise ValueError("t5_span_corruption needs sentinel_ids or vocab_size")
        if vocab_size - k < special.first_regular:
            raise ValueError(f"{k} sentinels counting down from vocab_size-1={vocab_size - 1} reach special ids")
        return torch.arange(vocab_size - 1, vocab_size - 1 - k, -1)
    if len(sentinel_ids) < k:
        raise ValueError(f"{k} noise spans need {k} sentinel ids, only {len(sentinel_ids)} given")
    return torch.tensor(list(sentinel_ids[:k]), dtype=torch.long)


# ---------------------------------------------------------------- TSDAE-style noises


def delete(
    x: Tensor, *, generator: torch.Generator, ratio: float = 0.6, allow_empty: bool = False,
    special: SpecialIds = SpecialIds(),
) -> Tensor:
    """Delete exactly ``round(ratio * N)`` body tokens (at most N-1 unless ``allow_empty``)."""
    head, body, tail = _split(x, special)
    n = body.numel()
    k = _count(ratio, n)
    if not allow_empty and n:
        k = min(k, n - 1)
    keep = torch.randperm(n, generator=generator)[k:].sort().values
    return _join(head, body[keep], tail)


def replace(
    x: Tensor, *, generator: torch.Generator, ratio: float = 0.1, vocab_size: int | None = None,
    special: SpecialIds = SpecialIds(),
) -> Tensor:
    """Replace exactly ``round(ratio * N)`` body tokens by random regular ids, each different
    from the token it replaces (so the realised change ratio is the asked one)."""
    head, body, tail = _split(x, special)
    k = _count(ratio, body.numel())
    pos = torch.randperm(body.numel(), generator=generator)[:k]
    if vocab_size is None or vocab_size - special.first_regular < 2:
        raise ValueError(f"replace needs vocab_size with at least 2 regular ids, got {vocab_size}")
    old = body[pos]
    is_regular = old >= special.first_regular
    choices = (vocab_size - special.first_regular) - is_regular.long()  # leave the old id out
    new = special.first_regular + (torch.rand(k, generator=generator, dtype=torch.float64) * choices).long()
    new = new + (is_regular & (new >= old)).long()  # skip over the old id
    out = body.clone()
    out[pos] = new
    return _join(head, out, tail)


def insert(
    x: Tensor, *, generator: torch.Generator, ratio: float = 0.1,
    with_token: Literal["random", "mask"] = "mask", vocab_size: int | None = None,
    special: SpecialIds = SpecialIds(),
) -> Tensor:
    """Insert exactly ``round(ratio * N)`` random or mask tokens at random places: N' = N + k."""
    if with_token not in ("random", "mask"):
        raise ValueError(f"with_token must be 'random' or 'mask', got {with_token!r}")
    head, body, tail = _split(x, special)
    n = body.numel()
    k = _count(ratio, n)
    is_new = torch.zeros(n + k, dtype=torch.bool)
    is_new[torch.randperm(n + k, generator=generator)[:k]] = True
    out = torch.empty(n + k, dtype=torch.long)
    out[~is_new] = body
    out[is_new] = _random_ids(k, vocab_size, special, generator) if with_token == "random" else special.mask
    return _join(head, out, tail)


def shuffle(
    x: Tensor, *, generator: torch.Generator, max_distance: int = 3, special: SpecialIds = SpecialIds()
) -> Tensor:
    """Local shuffle: sort positions ``i + u``, ``u ~ U[0, max_distance + 1)``; no token moves
    more than ``max_distance`` places."""
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    head, body, tail = _split(x, special)
    n = body.numel()
    scores = torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=generator, dtype=torch.float64) * (
        max_distance + 1
    )
    return _join(head, body[scores.argsort(stable=True)], tail)


def rotate(x: Tensor, *, generator: torch.Generator, special: SpecialIds = SpecialIds()) -> Tensor:
    """Rotate the body to start at a random token other than its first (N >= 2; else unchanged)."""
    head, body, tail = _split(x, special)
    n = body.numel()
    if n < 2:
        return x.clone()
    offset = int(torch.randint(1, n, (1,), generator=generator))
    return _join(head, torch.cat([body[offset:], body[:offset]]), tail)


def knockout(
    x: Tensor, *, generator: torch.Generator, ratio: float = 0.1,
    with_token: Literal["unk", "mask"] = "mask", special: SpecialIds = SpecialIds(),
) -> Tensor:
    """Replace exactly ``round(ratio * N)`` body tokens by unk or mask."""
    if with_token not in ("unk", "mask"):
        raise ValueError(f"with_token must be 'unk' or 'mask', got {with_token!r}")
    head, body, tail = _split(x, special)
    pos = torch.randperm(body.numel(), generator=generator)[: _count(ratio, body.numel())]
    out = body.clone()
    out[pos] = special.unk if with_token == "unk" else special.mask
    return _join(head, out, tail)
