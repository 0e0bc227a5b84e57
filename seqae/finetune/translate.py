"""Seq2seq translation on an exported text encoder: a Transformer decoder attending to the encoder's states.

Dimension letters: B batch, S source tokens, T target tokens, D encoder width, H decoder width, E target
embedding width, V target vocabulary.

Data: `data.train` / `data.heldout` / `data.test` are UTF-8 pairs files (plain or .gz), one `source<TAB>target`
a line, or with `data.source_column` / `data.target_column` two chosen fields of wider rows (read by
`seqae.data.bitext`). The source side is tokenised with the export's SentencePiece model; the target side with
a SentencePiece model trained on the labelled training targets (<run_dir>/target_tokenizer.model, reused on
resume). Blank lines, malformed lines (too few fields, more than two under the default columns, an empty side)
and overlong sources are skipped and counted by reason (`data.strict`: a malformed line stops the run, naming
file, line and reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.config import ConfigError
from seqae.data.batching import TokenBudgetBatcher
from seqae.data.bitext import no_pairs_reason, read_pairs
from seqae.export.decoder import load_decoder
from seqae.export.encoder import ExportError, PretrainedEncoder
from seqae.finetune.common import freeze, init_encoder, labelled_subset
from seqae.finetune.config import DecoderConfig, FinetuneConfig
from seqae.frontend.collate import collate_tokens
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer, train_tokenizer
from seqae.generate import beam_search, greedy_decode
from seqae.models.decoders import State, TokenDecoder, TransformerDecoder
from seqae.models.fast.linear import Linear
from seqae.models.layers import lengths_to_mask


class Translator(nn.Module):
    """Encoder states -> (Linear to the decoder width) -> memory of a `TokenDecoder` over target tokens."""

    def __init__(self, *, encoder: PretrainedEncoder, target: TokenDecoder, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder, self.target, self.frozen = encoder, target, freeze_encoder
        dim = target.output_dim
        self.bridge = Linear(encoder.output_dim, dim) if encoder.output_dim != dim else nn.Identity()
        if freeze_encoder:
            freeze(encoder)

    def train(self, mode: bool = True) -> Translator:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """src: [B, S] ids (bos ... eos), src_lengths: [B] -> memory [B, S, H], memory_mask [B, S]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            enc = self.encoder.encode_inputs(src, src_lengths)
        return self.bridge(enc.states), lengths_to_mask(enc.lengths, enc.states.shape[1])

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: tgt_in [B, T] (bos first) -> logits [B, T, V] for the next tokens."""
        memory, mask = self.encode(src, src_lengths)
        return self.target(tgt_in, memory, mask)

    @torch.no_grad()
    def translate(self, src: Tensor, src_lengths: Tensor, *, max_len: int, beam_size: int = 1
                  ) -> tuple[Tensor, Tensor]:
        """src: [B, S] -> target ids [B, L] (bos first, pad after eos) and lengths [B] (bos, eos counted)."""
        memory, mask = self.encode(src, src_lengths)
        stepper = _Stepper(self.target, memory, mask)
        rows = torch.arange(src.shape[0], device=src.device)  # (B,) what seqae.generate calls z
        ids = dict(bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID)
        if beam_size > 1:
            return beam_search(stepper, rows, beam_size=beam_size, max_len=max_len, **ids)
        return greedy_decode(stepper, rows, max_len=max_len, **ids)


class _Stepper:
    """The `start/step/reorder` model of `seqae.generate` for one encoded batch: `z` is each hypothesis's
    source row [B'] (beam search repeats rows), so memory and mask follow the hypotheses."""

    def __init__(self, target: TokenDecoder, memory: Tensor, mask: Tensor) -> None:
        self.target, self.memory, self.mask = target, memory, mask

    def start(self, rows: Tensor) -> State:
        return self.target.start(self.memory.index_select(0, rows), self.mask.index_select(0, rows))

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """prev: [B'] token ids -> log_probs [B', V]."""
        return self.target.step(prev, state)

    reorder = staticmethod(TokenDecoder.reorder)


def build_target_decoder(cfg: DecoderConfig, vocab_size: int) -> TokenDecoder:
    """A target-side decoder (random weights) described by the fine-tuning config's `decoder` section."""
    decoder = TransformerDecoder(input_dim=cfg.embed_dim, dim=cfg.dim, num_layers=cfg.layers,
                                 num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
                                 max_positions=cfg.max_positions)
    return TokenDecoder(vocab_size=vocab_size, embed_dim=cfg.embed_dim, decoder=decoder,
                        tie_embeddings=cfg.tie_embeddings, pad_id=PAD_ID)


def build_translator(encoder: PretrainedEncoder, cfg: DecoderConfig, vocab_size: int, *,
                     freeze_encoder: bool = False) -> Translator:
    """The translation model around `encoder` with a decoder described by `cfg`."""
    return Translator(encoder=encoder, target=build_target_decoder(cfg, vocab_size), freeze_encoder=freeze_encoder)


def init_target(config: FinetuneConfig) -> tuple[TokenDecoder, Tokenizer] | None:
    """The target side of `config.decoder_spec` (an export written with `--decoder`): its decoder built with
    random weights after seeding with train.seed + 1, given the export's weights when `decoder_export` is set; and
    its tokenizer. None without a decoder export (the `decoder` section describes the decoder). The RNG ends in the
    same state either way, so the modules built next (the bridge) start alike in pretrained and random-init runs."""
    if config.decoder_spec is None:
        return None
    key = "decoder_architecture" if config.decoder_architecture is not None else "decoder_export"
    try:
        torch.manual_seed(config.train.seed + 1)
        target, tokenizer = load_decoder(config.decoder_spec, weights=False)
        if config.decoder_export is not None:
            with torch.random.fork_rng(devices=[]):  # building it draws random weights: leave the RNG as it was, so
                pretrained, pretrained_tokenizer = load_decoder(config.decoder_export)  # what follows is the same
            if pretrained_tokenizer.serialized() != tokenizer.serialized():
                raise ExportError(f"{config.decoder_export} and {config.decoder_architecture} have different "
                                  "tokenizers")
            target.load_state_dict(pretrained.state_dict(), strict=True)
    except (FileNotFoundError, ExportError) as err:
        raise ConfigError(f"{key}: {err}") from None
    except RuntimeError as err:  # load_state_dict: the two exports' decoders differ in shape
        raise ConfigError(f"decoder_export: {config.decoder_export} and decoder_architecture: "
                          f"{config.decoder_architecture} describe different decoders ({err})") from None
    return target.train(), tokenizer


@torch.no_grad()
def translate_ids(model: Translator, src: list[list[int]], target_tokenizer: Tokenizer, *, max_tokens: int,
                  max_len: int, beam_size: int = 1) -> list[str]:
    """Source id sequences (bos ... eos) -> detokenised translations, in order, in batches of `max_tokens`
    source tokens; each translation at most `max_len` target tokens (bos and eos counted)."""
    was_training = model.training
    model.eval()
    out: list[str] = [""] * len(src)
    for idx in TokenBudgetBatcher([len(s) for s in src], max_tokens=max_tokens, shuffle=False).batches(0):
        tokens, lengths = model.translate(*collate_tokens([src[i] for i in idx], PAD_ID), max_len=max_len,
                                          beam_size=beam_size)
        for i, row, n in zip(idx, tokens.tolist(), lengths.tolist()):
            out[i] = target_tokenizer.decode([t for t in row[1:n] if t not in (EOS_ID, PAD_ID)])
    model.train(was_training)
    return out


EXAMPLES = 5
"""Translations kept in each evaluation's metrics (the first pairs of the split)."""


@dataclass
class PairData:
    src: list[list[int]]
    tgt: list[list[int]]
    refs: list[str]
    """The raw target sentences (BLEU references)."""
    sources: list[str]
    """The raw source sentences (shown beside their translations)."""


@dataclass
class TranslateData:
    train: PairData
    eval: dict[str, PairData]
    stats: dict[str, Any]


class TranslateTask:
    """Seq2seq fine-tuning of a text encoder on a `label_fraction` subset of the training pairs.

    A `seqae.tasks.Task`: the training loop of `seqae.train` drives it.
    """

    stream = None  # the labelled set is held in memory

    def __init__(self, config: FinetuneConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        d = config.data
        sources = {"train": d.train, "heldout": d.heldout, "test": d.test}
        raw = {split: read_pairs(path, f"data.{split}", strict=d.strict, source_column=d.source_column,
                                 target_column=d.target_column) for split, path in sources.items() if path}
        train_pairs, train_stats = raw["train"]
        if not train_pairs:
            raise ConfigError(f"data.train: no usable pair in {d.train}: {no_pairs_reason(train_stats)}")
        train_pairs = [train_pairs[i] for i in labelled_subset(len(train_pairs), config.label_fraction,
                                                               config.train.seed)]
        train_stats.update(label_fraction=config.label_fraction, labelled=len(train_pairs))
        encoder = init_encoder(config, kind="text")
        pretrained_target = init_target(config)
        self.target_tokenizer = self._target_tokenizer([t for _, t in train_pairs], pretrained_target)
        if pretrained_target is None:  # built after the encoder from the same seeded RNG
            target = build_target_decoder(config.decoder, self.target_tokenizer.vocab_size)
        else:
            target = pretrained_target[0]
        self.model = Translator(encoder=encoder, target=target, freeze_encoder=config.freeze_encoder)
        self.source_tokenizer = encoder.tokenizer
        self.max_len = self._source_max_len(encoder)
        stats: dict[str, Any] = {"train": train_stats, "target_vocab": self.target_tokenizer.vocab_size}
        train = self._encode(train_pairs, train_stats, overlong=d.overlong)
        evals = {}
        for split in ("heldout", "test"):
            if split in raw:
                pairs, stats[split] = raw[split]
                evals[split] = self._encode(pairs, stats[split], overlong="truncate")
        if not train.src:
            raise ConfigError(f"data.train: every labelled pair is over data.max_len ({self.max_len} source tokens)")
        self.data = TranslateData(train=train, eval=evals, stats=stats)

    def _target_tokenizer(self, targets: list[str], pretrained: tuple[TokenDecoder, Tokenizer] | None) -> Tokenizer:
        """The run's <run_dir>/target_tokenizer.model: reused on resume, else the decoder export's (copied there so
        the run is self-contained) or trained on the labelled targets."""
        path = self.run_dir / "target_tokenizer.model"
        if path.is_file():
            return Tokenizer.load(path)
        if pretrained is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pretrained[1].serialized())
            return pretrained[1]
        t = self.config.target_tokenizer
        try:
            return train_tokenizer(targets, self.run_dir / "target_tokenizer", vocab_size=t.vocab_size,
                                   model_type=t.model_type, normalization=t.normalization,
                                   seed=self.config.train.seed)
        except ValueError as err:
            raise ConfigError(f"target_tokenizer: {err}") from None

    def _source_max_len(self, encoder: PretrainedEncoder) -> int:
        """data.max_len, or the export's pretraining max_len; checked against the position tables."""
        max_len = self.config.data.max_len or encoder.config["frontend"]["max_len"]
        limit = encoder.config["encoder"].get("max_positions")
        if limit is not None and max_len > limit:
            raise ConfigError(f"data.max_len: {max_len} is more than the encoder's max_positions ({limit})")
        positions = self.model.target.decoder.max_positions
        if self.config.data.max_target_len > positions:
            where = self.config.decoder_spec or "decoder.max_positions"
            raise ConfigError(f"data.max_target_len: {self.config.data.max_target_len} is more than the decoder's "
                              f"max_positions ({positions}, {where})")
        return max_len

    def _encode(self, pairs: list[tuple[str, str]], stats: dict[str, Any], *, overlong: str) -> PairData:
        """Ids with bos/eos; sources over data.max_len skipped or cut (`overlong`: data.overlong for training,
        always cut for evaluation, so every pair is scored), targets over data.max_target_len cut (scored against
        the full reference anyway); all counted in `stats`."""
        d = self.config.data
        out = PairData(src=[], tgt=[], refs=[], sources=[])
        srcs = self.source_tokenizer.encode_batch([s for s, _ in pairs])
        tgts = self.target_tokenizer.encode_batch([t for _, t in pairs])
        long_src = long_tgt = 0
        for (source, ref), s, t in zip(pairs, srcs, tgts):
            if len(s) + 2 > self.max_len:
                long_src += 1
                if overlong == "skip":
                    continue
            long_tgt += len(t) + 2 > d.max_target_len
            out.src.append([BOS_ID, *s[: self.max_len - 2], EOS_ID])
            out.tgt.append([BOS_ID, *t[: d.max_target_len - 2], EOS_ID])
            out.refs.append(ref)
            out.sources.append(source)
        stats.update(overlong_sources=long_src, overlong_action=overlong, targets_cut=long_tgt, used=len(out.src))
        return out

    def summary(self) -> str:
        s = self.data.stats["train"]
        evals = ", ".join(f"{len(p.src)} {split}" for split, p in self.data.eval.items()) or "no evaluation data"
        return (f"data: {len(self.data.train.src)} labelled train pairs ({s['labelled']} drawn of {s['pairs']}, "
                f"label_fraction {self.config.label_fraction:g}); {evals}; source vocab "
                f"{self.source_tokenizer.vocab_size}, target vocab {self.target_tokenizer.vocab_size}")

    def train_lengths(self) -> list[int]:
        return [max(len(s), len(t)) for s, t in zip(self.data.train.src, self.data.train.tgt)]

    def batch(self, indices: list[int], epoch: int) -> dict[str, Tensor]:
        """src [B, S], src_lengths [B], tgt [B, T] (bos ... eos, padded)."""
        src, src_lengths = collate_tokens([self.data.train.src[i] for i in indices], PAD_ID)
        tgt, _ = collate_tokens([self.data.train.tgt[i] for i in indices], PAD_ID)
        return {"src": src, "src_lengths": src_lengths, "tgt": tgt}

    def _loss(self, batch: dict[str, Tensor], label_smoothing: float) -> tuple[Tensor, int]:
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt"][:, :-1])  # (B, T-1, V)
        target = batch["tgt"][:, 1:]  # (B, T-1)
        loss = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=PAD_ID,
                               label_smoothing=label_smoothing)
        return loss, int((target != PAD_ID).sum())

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, tokens = self._loss(batch, self.config.train.label_smoothing)
        return loss, {"ce": float(loss.detach()), "tokens": tokens}

    def translate_ids(self, src: list[list[int]], *, beam_size: int = 1) -> list[str]:
        """Source id sequences (bos ... eos) -> detokenised translations, in order."""
        return translate_ids(self.model, src, self.target_tokenizer, max_tokens=self.config.data.max_tokens,
                             max_len=self.config.data.max_target_len, beam_size=beam_size)

    @torch.no_grad()
    def _score(self, data: PairData, limit: int | None, beam_size: int) -> dict[str, Any]:
        import sacrebleu

        src, tgt, refs = data.src[:limit], data.tgt[:limit], data.refs[:limit]
        if not src:
            return {"bleu": float("nan"), "chrf": float("nan"), "loss": float("nan"), "sentences": 0}
        was_training = self.model.training
        self.model.eval()
        loss_sum, tokens = 0.0, 0
        for idx in TokenBudgetBatcher([len(s) for s in src], max_tokens=self.config.data.max_tokens,
                                      shuffle=False).batches(0):
            s, s_lengths = collate_tokens([src[i] for i in idx], PAD_ID)
            t, _ = collate_tokens([tgt[i] for i in idx], PAD_ID)
            loss, n = self._loss({"src": s, "src_lengths": s_lengths, "tgt": t}, 0.0)
            loss_sum, tokens = loss_sum + float(loss) * n, tokens + n
        self.model.train(was_training)
        hyps = self.translate_ids(src, beam_size=beam_size)
        return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
                "loss": loss_sum / max(tokens, 1), "sentences": len(src),
                "examples": [{"src": s, "ref": r, "hyp": h} for s, r, h in zip(data.sources[:EXAMPLES], refs, hyps)]}

    def evaluate(self, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """Loss, BLEU and chrF (sacrebleu) on the labelled training pairs and held-out pairs (the first `limit`
        of each, greedy); the final evaluation (limit None) adds the test split and uses train.beam_size."""
        beam = self.config.train.beam_size if limit is None else 1
        result = {"train": self._score(self.data.train, limit or self.config.data.eval_sentences, beam)}
        for split, data in self.data.eval.items():
            if split != "test" or limit is None:
                result[split] = self._score(data, limit, beam)
        return result

    def final_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {"init": "pretrained" if self.config.pretrained else "scratch",
                                   "decoder_init": "pretrained" if self.config.decoder_export else "scratch",
                                   "label_fraction": self.config.label_fraction,
                                   "labelled_pairs": len(self.data.train.src), "beam_size": self.config.train.beam_size}
        for split, r in self.evaluate().items():
            metrics.update({f"{split}_{k}": v for k, v in r.items()})
        return metrics
