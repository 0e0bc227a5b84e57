"""The one place where a config becomes a model."""

from __future__ import annotations

from torch import nn

from seqae.config import ModelConfig
from seqae.models.autoencoder import TokenAutoencoder
from seqae.models.bottleneck import Bottleneck
from seqae.models.decoders import RNNDecoder, TransformerDecoder
from seqae.models.encoders import RNNEncoder, TransformerEncoder


def build_encoder(cfg: ModelConfig, input_dim: int) -> nn.Module:
    if cfg.encoder == "transformer":
        return TransformerEncoder(input_dim=input_dim, dim=cfg.hidden_dim, num_layers=cfg.encoder_layers,
                                  num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
                                  max_positions=cfg.max_positions, cls_token=cfg.pooling == "cls")
    return RNNEncoder(input_dim=input_dim, hidden_dim=cfg.hidden_dim, num_layers=cfg.encoder_layers,
                      bidirectional=cfg.bidirectional, cell=cfg.encoder, dropout=cfg.dropout)


def build_decoder(cfg: ModelConfig, input_dim: int) -> nn.Module:
    if cfg.decoder == "transformer":
        return TransformerDecoder(input_dim=input_dim, dim=cfg.decoder_dim, num_layers=cfg.decoder_layers,
                                  num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
                                  max_positions=cfg.max_positions, bottleneck_dim=cfg.bottleneck_dim,
                                  memory_slots=cfg.memory_slots)
    return RNNDecoder(input_dim=input_dim, hidden_dim=cfg.decoder_dim, bottleneck_dim=cfg.bottleneck_dim,
                      num_layers=cfg.decoder_layers, cell=cfg.decoder, dropout=cfg.dropout)


def build_bottleneck(cfg: ModelConfig, input_dim: int) -> nn.Module:
    return Bottleneck(input_dim=input_dim, bottleneck_dim=cfg.bottleneck_dim, pooling=cfg.pooling)


def build_token_autoencoder(cfg: ModelConfig, vocab_size: int, *, pad_id: int = 0, unk_id: int = 1,
                            bos_id: int = 2, eos_id: int = 3) -> TokenAutoencoder:
    encoder = build_encoder(cfg, cfg.embed_dim)
    return TokenAutoencoder(
        vocab_size=vocab_size, embed_dim=cfg.embed_dim, encoder=encoder,
        bottleneck=build_bottleneck(cfg, encoder.output_dim), decoder=build_decoder(cfg, cfg.embed_dim),
        tie_embeddings=cfg.tie_embeddings, word_dropout=cfg.word_dropout,
        pad_id=pad_id, unk_id=unk_id, bos_id=bos_id, eos_id=eos_id,
    )
