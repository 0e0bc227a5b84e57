"""The decoder of a text export (`seqae export RUN DIR --decoder`): `load_decoder(dir)` -> (TokenDecoder, tokenizer).

A text autoencoder's decoder is a language model conditioned on its memory (z projected to memory slots). Written
with `--decoder`, an export adds `decoder.safetensors` (the run's `embedding.*`, `decoder.*`, `out_proj.*` and
`out_bias`, i.e. the token embedding is stored again beside the encoder's copy) and a `decoder` section in
config.json. `load_decoder` builds `seqae.models.decoders.TokenDecoder` from the run's `model` section with the
same builder as training and loads those weights, less `decoder.z_to_memory.*`: the model it goes into (a
translation model) gives the decoder its own memory. Like `seqae.export.encoder`, this depends on the models, the
front ends and the config only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqae.config import ModelConfig, load_config_dict
from seqae.export.encoder import CONFIG_FILE, ExportError, check_format, load_weights, read_json, read_tokenizer
from seqae.frontend.tokenizer import PAD_ID, Tokenizer
from seqae.models.builder import build_token_decoder
from seqae.models.decoders import TokenDecoder

DECODER_FILE = "decoder.safetensors"
UNUSED_PREFIX = "decoder.z_to_memory."
"""Weights of the autoencoder's z projection, stored but not loaded: the decoder is given its memory."""


def decoder_section(model: ModelConfig, vocab_size: int, step: int) -> dict[str, Any]:
    """config.json's `decoder` section: what `decoder.safetensors` holds, for readers and other tools."""
    return {"file": DECODER_FILE, "type": model.decoder, "vocab_size": vocab_size, "embed_dim": model.embed_dim,
            "dim": model.decoder_dim, "layers": model.decoder_layers, "num_heads": model.num_heads,
            "ff_dim": model.ff_dim, "max_positions": model.max_positions, "tie_embeddings": model.tie_embeddings,
            "memory": "the autoencoder's z, projected to memory slots (decoder.z_to_memory)", "step": step}


def decoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The decoder side of a `TokenAutoencoder`'s state dict (what `decoder.safetensors` holds)."""
    parts = ("embedding.", "decoder.", "out_proj.", "out_bias")
    return {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(parts)}


def load_decoder(path: str | Path, *, weights: bool = True) -> tuple[TokenDecoder, Tokenizer]:
    """The decoder and tokenizer of an export written with `--decoder`. `weights=False` keeps the random
    initialisation (the same architecture and tokenizer, trained from scratch). Raises FileNotFoundError naming a
    missing directory or file, ExportError naming a file that does not fit."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such export directory")
    config = read_json(root / CONFIG_FILE)
    check_format(config, root / CONFIG_FILE)
    if config.get("kind") != "text" or "decoder" not in config:
        why = "a speech export" if config.get("kind") == "speech" else "exported without --decoder"
        raise ExportError(f"{root}: has no decoder ({why}); export a text run with `seqae export RUN DIR --decoder`")
    try:
        model = load_config_dict(config["model"], ModelConfig)
        decoder = build_token_decoder(model, config["decoder"]["vocab_size"], pad_id=PAD_ID)
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{root / CONFIG_FILE}: cannot build the decoder it describes ({err})") from None
    tokenizer = read_tokenizer(root, decoder.vocab_size)
    if weights:
        load_weights(decoder, root / DECODER_FILE, root / CONFIG_FILE, drop_prefix=UNUSED_PREFIX)
    return decoder.eval(), tokenizer
