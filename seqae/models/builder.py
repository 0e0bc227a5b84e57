"""The one place where a config becomes a model: training, evaluation, export and fine-tuning all build here.

`build_model(config, ...)` gives the whole autoencoder of a run (text or speech, with its regulariser);
`build_encoder_stack(model, regularize, ...)` gives the encoder side alone (what an export holds). The small
modules take plain arguments; only this file reads config sections.
"""

from __future__ import annotations

from torch import nn

from seqae.config import Config, ModelConfig, RegularizerConfig
from seqae.models.autoencoder import TokenAutoencoder
from seqae.models.bottleneck import Bottleneck, VariationalBottleneck
from seqae.models.decoders import RNNDecoder, TokenDecoder, TransformerDecoder
from seqae.models.encoders import EncoderStack, RNNEncoder, TransformerEncoder
from seqae.models.frames import ConvSubsampling, FrameAutoencoder, LinearFrontEnd

SUBSAMPLING = {"linear": 1, "conv2": 2, "conv4": 4}
"""Frames in per frame out of each speech front end (`model.frontend`)."""


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


def build_token_decoder(cfg: ModelConfig, vocab_size: int, *, pad_id: int = 0) -> TokenDecoder:
    """The decoder side of a text autoencoder with a Transformer decoder (`model.decoder: transformer`), without
    its z projection: it attends to a memory it is given (a translation model's encoder states). Its parameters are
    the autoencoder's `embedding`, `decoder` (less `decoder.z_to_memory`), `out_proj` and `out_bias`."""
    if cfg.decoder != "transformer":
        raise ValueError(f"model.decoder is {cfg.decoder!r}: only a Transformer decoder can attend to a memory")
    decoder = TransformerDecoder(input_dim=cfg.embed_dim, dim=cfg.decoder_dim, num_layers=cfg.decoder_layers,
                                 num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
                                 max_positions=cfg.max_positions)
    return TokenDecoder(vocab_size=vocab_size, embed_dim=cfg.embed_dim, decoder=decoder,
                        tie_embeddings=cfg.tie_embeddings, pad_id=pad_id)


def build_bottleneck(cfg: ModelConfig, input_dim: int, reg: RegularizerConfig) -> nn.Module:
    if reg.variational:
        return VariationalBottleneck(input_dim=input_dim, bottleneck_dim=cfg.bottleneck_dim, pooling=cfg.pooling,
                                     kl_weight=reg.kl_weight, anneal_steps=reg.kl_anneal_steps,
                                     free_bits=reg.free_bits)
    return Bottleneck(input_dim=input_dim, bottleneck_dim=cfg.bottleneck_dim, pooling=cfg.pooling,
                      sparse=reg.sparse, sparse_weight=reg.sparse_weight, sparse_target=reg.sparse_target)


def build_frame_frontend(cfg: ModelConfig, feature_dim: int) -> nn.Module:
    """Frames [B, T, feature_dim] -> [B, T / factor, embed_dim]."""
    if cfg.frontend == "linear":
        return LinearFrontEnd(input_dim=feature_dim, dim=cfg.embed_dim)
    return ConvSubsampling(input_dim=feature_dim, dim=cfg.embed_dim, factor=SUBSAMPLING[cfg.frontend])


def build_token_autoencoder(cfg: ModelConfig, vocab_size: int, *, regularize: RegularizerConfig,
                            pad_id: int = 0, unk_id: int = 1, bos_id: int = 2, eos_id: int = 3) -> TokenAutoencoder:
    """Tokens -> embedding (embed_dim) -> encoder -> z -> decoder -> logits over `vocab_size`."""
    encoder = build_encoder(cfg, cfg.embed_dim)
    return TokenAutoencoder(
        vocab_size=vocab_size, embed_dim=cfg.embed_dim, encoder=encoder,
        bottleneck=build_bottleneck(cfg, encoder.output_dim, regularize), decoder=build_decoder(cfg, cfg.embed_dim),
        tie_embeddings=cfg.tie_embeddings, word_dropout=cfg.word_dropout,
        pad_id=pad_id, unk_id=unk_id, bos_id=bos_id, eos_id=eos_id,
        contractive_weight=regularize.contractive_weight, contractive_projections=regularize.contractive_projections,
    )


def build_frame_autoencoder(cfg: ModelConfig, feature_dim: int, *, regularize: RegularizerConfig
                            ) -> FrameAutoencoder:
    """Speech: frames [B, T, feature_dim] -> front end (width embed_dim) -> encoder -> z -> prenet -> decoder."""
    encoder = build_encoder(cfg, cfg.embed_dim)
    return FrameAutoencoder(
        frontend=build_frame_frontend(cfg, feature_dim), encoder=encoder,
        bottleneck=build_bottleneck(cfg, encoder.output_dim, regularize),
        decoder=build_decoder(cfg, cfg.prenet_dim), feature_dim=feature_dim,
        reduction_factor=cfg.reduction_factor, prenet_dim=cfg.prenet_dim, prenet_dropout=cfg.prenet_dropout,
        frame_loss=cfg.frame_loss, stop_weight=cfg.stop_weight,
        contractive_weight=regularize.contractive_weight, contractive_projections=regularize.contractive_projections,
        frame_prediction_weight=cfg.frame_prediction_weight, frames_per_state=SUBSAMPLING[cfg.frontend],
    )


def build_model(config: Config, *, vocab_size: int | None = None,
                feature_dim: int | None = None) -> TokenAutoencoder | FrameAutoencoder:
    """The autoencoder of a run: `config.task` picks tokens (give `vocab_size`) or frames (give `feature_dim`);
    `config.model` the architecture and `config.regularize` the regulariser."""
    if config.task == "speech":
        if feature_dim is None:
            raise ValueError("build_model: a speech config needs feature_dim")
        return build_frame_autoencoder(config.model, feature_dim, regularize=config.regularize)
    if vocab_size is None:
        raise ValueError("build_model: a text config needs vocab_size")
    return build_token_autoencoder(config.model, vocab_size, regularize=config.regularize)


def build_encoder_stack(cfg: ModelConfig, regularize: RegularizerConfig, *, vocab_size: int | None = None,
                        feature_dim: int | None = None, pad_id: int = 0) -> tuple[EncoderStack, nn.Module]:
    """The encoder side of the same model (random weights): token embedding (give `vocab_size`) or frame front end
    (give `feature_dim`), the sequence encoder, and the bottleneck. Its parameters are those of the autoencoder's
    `embedding`/`frontend`, `encoder` and `bottleneck`, with the same shapes."""
    if (vocab_size is None) == (feature_dim is None):
        raise ValueError("build_encoder_stack: give exactly one of vocab_size (text) and feature_dim (speech)")
    body = build_encoder(cfg, cfg.embed_dim)
    if vocab_size is not None:
        stack = EncoderStack(body=body, embedding=nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=pad_id))
    else:
        stack = EncoderStack(body=body, frontend=build_frame_frontend(cfg, feature_dim))
    return stack, build_bottleneck(cfg, body.output_dim, regularize)
