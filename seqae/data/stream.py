"""Corpora larger than memory: rows read lazily, a shuffle buffer, and token-budget batches cut from pools.

An epoch of a streamed corpus is

    rows (files in an order drawn per epoch)  ->  shuffle buffer (`buffer_size` rows)
      ->  pools of `pool_size` rows  ->  encode  ->  sort by length, cut under the token budget, shuffle the batches

so memory holds at most one buffer and one pool whatever the corpus size. Everything depends only on
(seed, epoch): a position is (epoch, pool, batch), and resuming replays the raw rows up to the pool (cheap: nothing
is encoded) and rebuilds it, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from seqae.data.batching import budget_batches

T = TypeVar("T")
Example = tuple[int, Any]  # (index of the row in its epoch, encoded sequence)


def shuffle_buffer(items: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """Items in a random order that only needs `size` of them in memory: each new item takes the place of a
    random one of the buffer, which comes out; the last `size` come out in a random order."""
    if size < 1:
        raise ValueError(f"shuffle buffer size must be >= 1, got {size}")
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    for j in rng.permutation(len(buffer)).tolist():
        yield buffer[j]


class StreamBatcher:
    """Batches of a stream under a token budget, reproducible from (seed, epoch) and resumable at any batch.

    Args:
        rows: `rows(epoch)` iterates the epoch's raw rows (any objects; the files' order may depend on `epoch`).
        encode: turns a pool of `(index, row)` into `(index, sequence)` examples (it may drop rows; it counts them).
        length: length of an encoded sequence (tokens or frames) for the budget.
        max_tokens, max_sentences: the budget, as in `TokenBudgetBatcher`.
        buffer_size: rows in the shuffle buffer (1: the stream's own order).
        pool_size: rows encoded and bucketed together; larger pools pad less.
        seed: base seed.
    """

    def __init__(self, rows: Callable[[int], Iterable[Any]], encode: Callable[[list[tuple[int, Any]]], list[Example]],
                 *, length: Callable[[Any], int], max_tokens: int, max_sentences: int | None = None,
                 buffer_size: int = 10_000, pool_size: int = 2_000, seed: int = 0) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self.rows, self.encode, self.length = rows, encode, length
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.buffer_size, self.pool_size, self.seed = buffer_size, pool_size, seed

    def epoch(self, epoch: int, pool: int = 0, batch: int = 0) -> Iterator[tuple[int, int, list[Example]]]:
        """`(pool, batch, examples)` from position (`pool`, `batch`) of `epoch` to its end."""
        stream = shuffle_buffer(enumerate(self.rows(epoch)), self.buffer_size, np.random.default_rng([self.seed, epoch]))
        p = 0
        while True:
            chunk = list(islice(stream, self.pool_size))
            if not chunk:
                return
            if p >= pool:  # earlier pools are replayed unencoded: the buffer's draws must stay the same
                examples = self.encode(chunk)
                lengths = np.array([self.length(seq) for _, seq in examples], dtype=np.int64)
                rng = np.random.default_rng([self.seed, epoch, p])
                batches = budget_batches(lengths, rng, max_tokens=self.max_tokens,
                                         max_sentences=self.max_sentences, shuffle=True)
                for b in range(batch if p == pool else 0, len(batches)):
                    yield p, b, [examples[i] for i in batches[b]]
            p += 1
