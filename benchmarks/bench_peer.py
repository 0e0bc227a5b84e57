"""The peer: sentence-transformers' TSDAE (`DenoisingAutoEncoderLoss`) on the same sentences and batch size.

Nothing is downloaded: the BERT is built from a local `BertConfig` (random weights) and saved to a temporary
folder with a WordPiece vocabulary trained here on the same fortunes sentences; every load is from that folder
with the hub offline. Noise: 60% of the words deleted (at least one kept), as in the TSDAE paper.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import torch
from bench_common import Sizes, Stopwatch, best_window, rate
from bench_train import profile_steps

DELETE_RATIO = 0.6


def peer_version() -> str | None:
    """sentence-transformers' version, or None when it (or transformers) is not installed."""
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("transformers") is None:
        return None
    from importlib.metadata import version

    return version("sentence-transformers")


def delete_words(text: str, rng: random.Random, ratio: float = DELETE_RATIO) -> str:
    """TSDAE's deletion noise on whitespace words: each word deleted with probability `ratio`, one always kept."""
    words = text.split()
    if not words:
        return text
    kept = [w for w in words if rng.random() >= ratio]
    return " ".join(kept) if kept else rng.choice(words)


def build_local_bert(sizes: Sizes, sentences: list[str], folder: Path) -> Path:
    """A randomly initialised BERT of the suite's size plus a WordPiece tokenizer, saved to `folder`."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sentences, vocab_size=sizes.vocab, min_frequency=1, show_progress=False)
    wordpiece.save_model(str(folder))  # vocab.txt
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    ids = [i for ids in tokenizer(sentences)["input_ids"] for i in ids[1:-1]]  # [CLS] ... [SEP]
    unknown = sum(i == tokenizer.unk_token_id for i in ids) / max(len(ids), 1)
    if unknown > 0.01:  # transformers 5 ignores `vocab_file=`: every word became [UNK] before this check
        raise RuntimeError(f"the peer's WordPiece tokenizer maps {unknown:.0%} of the tokens to [UNK]")
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=sizes.vocab, hidden_size=sizes.width, num_hidden_layers=sizes.layers,
                        num_attention_heads=sizes.heads, intermediate_size=sizes.ff,
                        max_position_embeddings=max(512, sizes.max_len))
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def build_tsdae(sizes: Sizes, sentences: list[str], folder: Path):
    """(SentenceTransformer with CLS pooling, DenoisingAutoEncoderLoss with a tied decoder)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    path = build_local_bert(sizes, sentences, folder)
    encoder = Transformer(str(path), max_seq_length=sizes.max_len)
    model = SentenceTransformer(modules=[encoder, Pooling(sizes.width, pooling_mode="cls")], device="cpu")
    loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    return model, loss


def run_loop(sizes: Sizes, sentences: list[str], workdir: Path, threads: int) -> dict[str, Any]:
    """TSDAE in a plain PyTorch loop: random batches, the model's own preprocessing, AdamW."""
    torch.set_num_threads(threads)
    model, loss_fn = build_tsdae(sizes, sentences, workdir / "bert")
    loss_fn.train()  # encoder and decoder in training mode (dropout on in both)
    optimizer = torch.optim.AdamW(loss_fn.parameters(), lr=1e-3)
    rng, generator = random.Random(0), torch.Generator().manual_seed(0)
    order: list[int] = []
    real = padded = 0

    def step() -> float:
        nonlocal order, real, padded
        if len(order) < sizes.batch:
            order = torch.randperm(len(sentences), generator=generator).tolist()
        texts, order = [sentences[i] for i in order[: sizes.batch]], order[sizes.batch:]
        source = model.preprocess([delete_words(t, rng) for t in texts])
        target = model.preprocess(texts)
        real, padded = real + int(target["attention_mask"].sum()), padded + target["attention_mask"].numel()
        loss = loss_fn([source, target], None)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(sizes.warmup):
        step()
    losses, windows, n = [], [], sizes.steps * sizes.batch
    for _ in range(sizes.windows):
        real = padded = 0
        with Stopwatch() as watch:
            losses += [step() for _ in range(sizes.steps)]
        windows.append({"seconds": watch.seconds, "sentences": n, "sentences_per_s": rate(n, watch.seconds),
                        "tokens_per_s_real": rate(real, watch.seconds),
                        "tokens_per_s_padded": rate(padded, watch.seconds),
                        "padding_efficiency_measured": real / max(padded, 1)})
    return {**best_window(windows), "loss_first": losses[0], "loss_last": losses[-1],
            "params": sum(p.numel() for p in loss_fn.parameters()), "decoder_dropout_active": True,
            "profile": profile_steps(step, steps=max(1, min(3, sizes.steps)))}


def run_trainer(sizes: Sizes, sentences: list[str], workdir: Path, threads: int) -> dict[str, Any]:
    """TSDAE through the official SentenceTransformerTrainer; the timed windows follow `warmup` untimed steps."""
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    torch.set_num_threads(threads)
    model, loss_fn = build_tsdae(sizes, sentences, workdir / "bert")
    rng = random.Random(0)

    def noise(batch: dict[str, list[str]]) -> dict[str, list[str]]:
        return {"noisy": [delete_words(t, rng) for t in batch["text"]], "text": batch["text"]}

    dataset = datasets.Dataset.from_dict({"text": sentences})
    dataset.set_transform(noise, columns=["text"], output_all_columns=True)
    clock = _StepClock(loss_fn)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir / "trainer"), per_device_train_batch_size=sizes.batch,
        max_steps=sizes.warmup + sizes.windows * sizes.steps, learning_rate=1e-3, warmup_steps=0, use_cpu=True, seed=0,
        dataloader_drop_last=True, report_to="none", save_strategy="no", logging_strategy="no",
        disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss_fn,
                                         callbacks=[_callback(TrainerCallback, clock)])
    trainer.train()
    n, windows = sizes.steps * sizes.batch, []
    for w in range(sizes.windows):  # window w: from the end of step warmup + w*steps to the end of the next `steps`
        start, end = sizes.warmup + w * sizes.steps, sizes.warmup + (w + 1) * sizes.steps
        seconds = clock.ends[end] - clock.ends[start]
        windows.append({"seconds": seconds, "sentences": n, "sentences_per_s": rate(n, seconds)})
    return {**best_window(windows), "params": sum(p.numel() for p in loss_fn.parameters()),
            "decoder_dropout_active": clock.decoder_training}


class _StepClock:
    def __init__(self, loss_fn: torch.nn.Module) -> None:
        self.loss_fn = loss_fn
        self.ends: dict[int, float] = {}  # global step -> perf_counter at its end
        self.decoder_training: bool | None = None


def _callback(base: type, clock: _StepClock):
    """A transformers TrainerCallback that records when each step ends (data loading included, end to end)."""
    import time

    class StepTimer(base):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.decoder_training = bool(clock.loss_fn.decoder.training)

        def on_step_end(self, args, state, control, **kwargs):
            clock.ends[state.global_step] = time.perf_counter()

    return StepTimer()
