"""The one place where a config becomes a model."""

from __future__ import annotations

from torch import nn

from seqae.config import ModelConfig, RegularizerConfig
from seqae.models.autoencoder import TokenAutoencoder
from seqae.models.bottleneck import Bottleneck, VariationalBottleneck
from seqae.models.decoders import RNNDecoder, TransformerDecoder
from seqae.models.encoders import RNNEncoder, TransformerEncoder
from seqae.models.frames import ConvSubsampling, FrameAutoencoder, LinearFrontEnd


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


def build_bottleneck(cfg: ModelConfig, input_dim: int, reg: RegularizerConfig | None = None) -> nn.Module:
    reg = reg or RegularizerConfig()
    if reg.variational:
        return VariationalBottleneck(input_dim=input_dim, bottleneck_dim=cfg.bottleneck_dim, pooling=cfg.pooling,
                                     kl_weight=reg.kl_weight, anneal_steps=reg.kl_anneal_steps,
                                     free_bits=reg.free_bits)
    return Bottleneck(input_dim=input_dim, bottleneck_dim=cfg.bottleneck_dim, pooling=cfg.pooling,
                      sparse=reg.sparse, sparse_weight=reg.sparse_weight, sparse_target=reg.sparse_target)


def build_token_autoencoder(cfg: ModelConfig, vocab_size: int, *, regularize: RegularizerConfig | None = None,
                            pad_id: int = 0, unk_id: int = 1, bos_id: int = 2, eos_id: int = 3) -> TokenAutoencoder:
    reg = regularize or RegularizerConfig()
    encoder = build_encoder(cfg, cfg.embed_dim)
    return TokenAutoencoder(
        vocab_size=vocab_size, embed_dim=cfg.embed_dim, encoder=encoder,
        bottleneck=build_bottleneck(cfg, encoder.output_dim, reg), decoder=build_decoder(cfg, cfg.embed_dim),
        tie_embeddings=cfg.tie_embeddings, word_dropout=cfg.word_dropout,
        pad_id=pad_id, unk_id=unk_id, bos_id=bos_id, eos_id=eos_id,
        contractive_weight=reg.contractive_weight, contractive_projections=reg.contractive_projections,
    )


def build_frame_autoencoder(cfg: ModelConfig, feature_dim: int, *,
                            regularize: RegularizerConfig | None = None) -> FrameAutoencoder:
    """Speech: frames [B, T, feature_dim] -> front end (width embed_dim) -> encoder -> z -> prenet -> decoder."""
    reg = regularize or RegularizerConfig()
    if cfg.frontend == "linear":
        frontend: nn.Module = LinearFrontEnd(input_dim=feature_dim, dim=cfg.embed_dim)
    else:
        factor = {"conv2": 2, "conv4": 4}[cfg.frontend]
        frontend = ConvSubsampling(input_dim=feature_dim, dim=cfg.embed_dim, factor=factor)
    encoder = build_encoder(cfg, cfg.embed_dim)
    return FrameAutoencoder(
        frontend=frontend, encoder=encoder, bottleneck=build_bottleneck(cfg, encoder.output_dim, reg),
        decoder=build_decoder(cfg, cfg.prenet_dim), feature_dim=feature_dim,
        reduction_factor=cfg.reduction_factor, prenet_dim=cfg.prenet_dim, prenet_dropout=cfg.prenet_dropout,
        frame_loss=cfg.frame_loss, stop_weight=cfg.stop_weight,
        contractive_weight=reg.contractive_weight, contractive_projections=reg.contractive_projections,
    )
