"""SentencePiece wrapper: reserved ids, round trips, determinism, word-start mask, errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from seqae.frontend.tokenizer import (
    BOS_ID,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    train_tokenizer,
)

FORTUNES = Path(__file__).resolve().parents[1] / "data" / "fortunes"


def read_lines(name: str) -> list[str]:
    return (FORTUNES / name).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def train_lines() -> list[str]:
    return read_lines("train.txt")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, train_lines) -> dict[str, Tokenizer]:
    out = tmp_path_factory.mktemp("spm")
    return {
        kind: train_tokenizer(train_lines, out / kind, vocab_size=800, model_type=kind)
        for kind in ("unigram", "bpe")
    }


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_reserved_ids_and_files(tokenizers, kind):
    tok = tokenizers[kind]
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID) == (0, 1, 2, 3, 4)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert [tok.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    assert tok.vocab_size == 800
    assert tok.model_path.name == f"{kind}.model" and tok.model_path.is_file()
    vocab = tok.model_path.with_suffix(".vocab").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 800 and vocab[4].split("\t")[0] == "<mask>"


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_round_trip_on_heldout_sentences(tokenizers, kind):
    tok = tokenizers[kind]
    heldout = read_lines("heldout.txt")
    encoded = tok.encode_batch(heldout)
    assert encoded == [tok.encode(s) for s in heldout]
    for sentence, ids in zip(heldout, encoded):
        assert ids and ids[0] != BOS_ID and ids[-1] != EOS_ID  # no specials added
        assert all(i > MASK_ID for i in ids)  # plain ASCII prose: no unk, no specials
        assert tok.decode(ids) == sentence


def test_decode_drops_specials_and_stops_at_eos(tokenizers):
    tok = tokenizers["unigram"]
    ids = tok.encode("Never trust a computer you can't lift.")
    other = tok.encode("Garbage after the end.")
    assert tok.decode([BOS_ID, *ids, EOS_ID, *other, PAD_ID, PAD_ID]) == "Never trust a computer you can't lift."
    assert tok.decode(torch.tensor([BOS_ID, *ids, EOS_ID, PAD_ID])) == tok.decode(ids)
    assert tok.decode([EOS_ID, *ids]) == tok.decode(ids)  # an eos at position 0 does not stop
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(torch.tensor([[BOS_ID, *ids]]))
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_word_start_mask_marks_first_piece_of_each_word(tokenizers, kind):
    tok = tokenizers[kind]
    mask = tok.word_start_mask()
    assert mask.dtype == torch.bool and mask.shape == (tok.vocab_size,)
    assert not mask[: MASK_ID + 1].any()
    for i in range(MASK_ID + 1, tok.vocab_size):
        assert bool(mask[i]) == tok.id_to_piece(i).startswith("\u2581"), tok.id_to_piece(i)
    assert 0 < int(mask.sum()) < tok.vocab_size
    for sentence in read_lines("heldout.txt")[:50]:
        ids = torch.tensor(tok.encode(sentence))
        assert int(mask[ids].sum()) == len(sentence.split()), sentence


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_training_is_deterministic_across_folders(tmp_path, train_lines, kind):
    lines = train_lines[:1500]
    a = train_tokenizer(lines, tmp_path / "a" / "m", vocab_size=300, model_type=kind)
    b = train_tokenizer(iter(lines), tmp_path / "b" / "other", vocab_size=300, model_type=kind)
    assert a.model_path.read_bytes() == b.model_path.read_bytes()
    assert a.serialized() == a.model_path.read_bytes()
    c = train_tokenizer(train_lines[1500:3000], tmp_path / "c" / "m", vocab_size=300, model_type=kind)
    assert c.model_path.read_bytes() != a.model_path.read_bytes()  # the check can tell models apart


def test_case_folding_normalization(tmp_path, train_lines):
    """`normalization: nmt_nfkc_cf` lowercases in training and in encoding (it is stored in the model); the
    default keeps case; an unknown rule is refused by name."""
    lines = train_lines[:1500]
    folded = train_tokenizer(lines, tmp_path / "cf", vocab_size=300, normalization="nmt_nfkc_cf")
    cased = train_tokenizer(lines, tmp_path / "cased", vocab_size=300)
    assert folded.encode("BANK Error") == folded.encode("bank error")
    assert folded.decode(folded.encode("BANK Error")) == "bank error"
    assert cased.encode("BANK Error") != cased.encode("bank error")
    assert Tokenizer.load(str(folded.model_path)).encode("Bank") == folded.encode("bank")
    with pytest.raises(ValueError, match="normalization must be one of"):
        train_tokenizer(lines, tmp_path / "x", vocab_size=300, normalization="lowercase")


def test_from_bytes_matches_loaded_model(tokenizers):
    tok = tokenizers["bpe"]
    copy = Tokenizer.from_bytes(tok.serialized())
    assert copy.model_path is None
    assert copy.encode("Bank error in your favor.") == tok.encode("Bank error in your favor.")
    reloaded = Tokenizer.load(str(tok.model_path))
    assert reloaded.encode_batch(["Are you a turtle?"]) == tok.encode_batch(["Are you a turtle?"])


def test_small_corpus_gets_smaller_vocab(tmp_path):
    tok = train_tokenizer(["a cat sat", "the dog ran", "a dog sat"], tmp_path / "tiny", vocab_size=5000)
    assert 5 < tok.vocab_size < 5000
    assert tok.decode(tok.encode("a dog ran")) == "a dog ran"


def test_bad_model_type(tmp_path):
    with pytest.raises(ValueError, match=r"unigram.*bpe.*'word'"):
        train_tokenizer(["some text"], tmp_path / "m", vocab_size=100, model_type="word")


def test_vocab_smaller_than_alphabet_is_a_clear_error(tmp_path, train_lines):
    with pytest.raises(ValueError, match=r"vocab_size=20\): Vocabulary size is smaller than required_chars") as info:
        train_tokenizer(train_lines[:200], tmp_path / "m", vocab_size=20)
    assert "INTERNAL" not in str(info.value) and ".cc" not in str(info.value)


def test_no_text_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no non-empty line"):
        train_tokenizer(["", "   "], tmp_path / "m", vocab_size=100)


def test_missing_model_file(tmp_path):
    missing = tmp_path / "nowhere" / "spm.model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        Tokenizer.load(missing)


def test_foreign_model_with_other_special_ids_is_refused(tmp_path, train_lines):
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train_lines[:500]), model_writer=proto, vocab_size=200, minloglevel=2
    )
    path = tmp_path / "foreign.model"
    path.write_bytes(proto.getvalue())
    with pytest.raises(ValueError, match="foreign.model has special ids"):
        Tokenizer.load(path)
