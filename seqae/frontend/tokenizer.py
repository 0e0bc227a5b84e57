"""SentencePiece tokenizer with fixed reserved ids.

Every model trained here has the same special ids, so the rest of seqae can use the
module constants without asking the tokenizer:

    PAD_ID=0 <pad>   UNK_ID=1 <unk>   BOS_ID=2 <s>   EOS_ID=3 </s>   MASK_ID=4 <mask>

`encode` never adds bos/eos; `seqae.data.text.encode_lines` does that when it builds
training sequences.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sentencepiece as spm
import torch

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
MASK_ID = 4
MASK_PIECE = "<mask>"
MODEL_TYPES = ("unigram", "bpe")
NORMALIZATIONS = ("nmt_nfkc", "nmt_nfkc_cf", "nfkc", "nfkc_cf", "identity")
"""SentencePiece's normalization rules; `_cf` ones also fold case (lowercase text, as uncased BERT models)."""
WORD_BOUNDARY = "\u2581"  # "▁", SentencePiece's marker for a piece that starts a word


def train_tokenizer(
    lines: Iterable[str],
    model_prefix: str | Path,
    *,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    normalization: str = "nmt_nfkc",
    seed: int = 0,
) -> Tokenizer:
    """Train a SentencePiece model in-process and write `<model_prefix>.model` and `.vocab`.

    Training is deterministic: the same lines and arguments give a byte-identical model
    file (one trainer thread, fixed seed, and the output path is not stored in the model).
    `vocab_size` is a soft limit: a corpus too small for it gives a smaller vocabulary,
    reported by `Tokenizer.vocab_size`. `normalization` (one of NORMALIZATIONS) is stored in the
    model, so encoding applies it too.

    Raises:
        ValueError: unknown `model_type`, no non-empty line, or a vocabulary too small to
            hold the corpus's characters (the message says which).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if vocab_size <= MASK_ID + 1:
        raise ValueError(f"vocab_size must be > {MASK_ID + 1} (the reserved ids), got {vocab_size}")
    counter = _NonEmptyCounter(lines)
    proto = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(counter),
            model_writer=proto,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name=normalization,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            user_defined_symbols=[MASK_PIECE],
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        if counter.non_empty == 0:
            raise ValueError(f"cannot train tokenizer {model_prefix}: no non-empty line") from None
        reason = _spm_reason(str(err))
        raise ValueError(f"cannot train tokenizer {model_prefix} (vocab_size={vocab_size}): {reason}") from None
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    model_path = prefix.with_name(prefix.name + ".model")
    tmp = model_path.with_name(f".{model_path.name}.tmp")  # atomic: a killed run never leaves half a model
    tmp.write_bytes(proto.getvalue())
    os.replace(tmp, model_path)
    tokenizer = Tokenizer.load(model_path)
    tokenizer.write_vocab(prefix.with_name(prefix.name + ".vocab"))
    return tokenizer


class Tokenizer:
    """A loaded SentencePiece model whose special ids are the module constants.

    Build it with `Tokenizer.load(path)` or `Tokenizer.from_bytes(proto)`.
    """

    def __init__(self, processor: spm.SentencePieceProcessor, model_path: Path | None) -> None:
        self._sp = processor
        self.model_path = model_path
        _check_reserved_ids(processor, model_path)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a `.model` file; FileNotFoundError naming the path if it is missing."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        return cls(spm.SentencePieceProcessor(model_proto=path.read_bytes()), path)

    @classmethod
    def from_bytes(cls, proto: bytes) -> Tokenizer:
        """Load a model from its serialized proto (see `serialized`); `model_path` is None."""
        return cls(spm.SentencePieceProcessor(model_proto=proto), None)

    @property
    def vocab_size(self) -> int:
        """Real number of pieces (may be below the requested size for a small corpus)."""
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    def encode(self, text: str) -> list[int]:
        """Piece ids of `text`, without bos/eos."""
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many texts at once."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of `ids: [T]`: a leading bos is dropped, the text stops at the first eos
        after position 0, and any other pad/bos/eos ids are dropped."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D tensor [T], got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        if EOS_ID in ids[1:]:
            ids = ids[: ids.index(EOS_ID, 1)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids out of range [0, {self.vocab_size}): {bad[:5]}")
        return self._sp.decode([i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)])

    def id_to_piece(self, i: int) -> str:
        """The piece string of id `i`."""
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"id {i} out of range [0, {self.vocab_size})")
        return self._sp.id_to_piece(i)

    def word_start_mask(self) -> torch.Tensor:
        """BoolTensor `[vocab_size]`: True for pieces that begin a word (start with "▁").

        Special and user-defined pieces (pad, unk, bos, eos, mask) are False.
        """
        sp = self._sp
        flags = [
            sp.id_to_piece(i).startswith(WORD_BOUNDARY)
            and not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i) or i == MASK_ID)
            for i in range(self.vocab_size)
        ]
        return torch.tensor(flags, dtype=torch.bool)

    def serialized(self) -> bytes:
        """The model proto; `Tokenizer.from_bytes` or a `.model` file can be made from it."""
        return self._sp.serialized_model_proto()

    def write_vocab(self, path: str | Path) -> None:
        """Write `piece<TAB>score` lines, one per id, like SentencePiece's `.vocab` file."""
        sp = self._sp
        rows = (f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(self.vocab_size))
        Path(path).write_text("".join(rows), encoding="utf-8")


class _NonEmptyCounter:
    """Iterates over lines and counts those that are not blank."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.non_empty = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            if line.strip():
                self.non_empty += 1
            yield line


def _check_reserved_ids(sp: spm.SentencePieceProcessor, path: Path | None) -> None:
    found = {
        "pad": sp.pad_id(),
        "unk": sp.unk_id(),
        "bos": sp.bos_id(),
        "eos": sp.eos_id(),
        "mask": sp.piece_to_id(MASK_PIECE) if sp.get_piece_size() > MASK_ID else -1,
    }
    expected = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "mask": MASK_ID}
    if found != expected:
        raise ValueError(
            f"tokenizer {path or '<bytes>'} has special ids {found}, expected {expected}; "
            "train it with seqae.frontend.tokenizer.train_tokenizer"
        )


def _spm_reason(message: str) -> str:
    """The readable part of a SentencePiece error ("INTERNAL: file.cc(638) [check] reason")."""
    return re.sub(r"^.*?\]\s*", "", message.strip(), count=1) or message.strip()
