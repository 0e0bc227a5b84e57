"""A trained run, loaded from its directory: encode sentences to z and reconstruct them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import yaml

from seqae.checkpoint import CheckpointError, load_latest
from seqae.config import Config, load_config_dict
from seqae.data.batching import collate_tokens
from seqae.eval.tokens import reconstruct_ids
from seqae.models.autoencoder import TokenAutoencoder
from seqae.models.builder import build_token_autoencoder
from seqae.frontend.tokenizer import Tokenizer


@dataclass
class Run:
    config: Config
    tokenizer: Tokenizer
    model: TokenAutoencoder
    step: int

    def _batch(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        max_len = self.config.data.max_len
        seqs = []
        for text in sentences:
            ids = self.tokenizer.encode(text)[: max_len - 2]
            seqs.append([self.tokenizer.bos_id, *ids, self.tokenizer.eos_id])
        return collate_tokens(seqs, self.tokenizer.pad_id)

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], *, batch_size: int = 256) -> torch.Tensor:
        """Sentences -> z [N, Z] (sentences longer than data.max_len are truncated, as in training)."""
        self.model.eval()
        out = []
        for i in range(0, len(sentences), batch_size):
            tokens, lengths = self._batch(sentences[i: i + batch_size])
            out.append(self.model.encode(tokens, lengths)[0])
        return torch.cat(out) if out else torch.zeros(0, self.config.model.bottleneck_dim)

    @torch.no_grad()
    def reconstruct(self, sentences: Sequence[str], *, beam_size: int = 1, batch_size: int = 256) -> list[str]:
        """Encode each sentence to z and decode it back to text."""
        results = []
        for i in range(0, len(sentences), batch_size):
            tokens, lengths = self._batch(sentences[i: i + batch_size])
            generated, gen_lengths = reconstruct_ids(self.model, tokens, lengths,
                                                     max_len=self.config.data.max_len, beam_size=beam_size)
            results += [self.tokenizer.decode(g[:n].tolist()) for g, n in zip(generated, gen_lengths)]
        return results


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory's config, tokenizer and newest usable checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: not a seqae run directory (no config.yaml)")
    config = load_config_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    tokenizer = Tokenizer.load(run_dir / "tokenizer.model")
    ckpt = load_latest(run_dir)
    if ckpt is None:
        raise CheckpointError(f"{run_dir}: no usable checkpoint in {run_dir / 'checkpoints'}")
    model = build_token_autoencoder(config.model, tokenizer.vocab_size, regularize=config.regularize)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return Run(config=config, tokenizer=tokenizer, model=model, step=ckpt["step"])
