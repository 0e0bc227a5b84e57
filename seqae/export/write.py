"""Writing an export: the encoder side of a run (opened with `seqae.runs.load_run`) to a self-contained directory.

config.json is written from the run's own config dataclasses (`model`, `regularize`), which `load_encoder` builds
from again; its `encoder`, `bottleneck` and `frontend` sections describe the result for readers and other tools.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save

from seqae.config import to_dict
from seqae.export.card import model_card
from seqae.export.decoder import DECODER_FILE, decoder_section, decoder_state
from seqae.export.encoder import (
    CARD_FILE,
    CONFIG_FILE,
    FEATURES_FILE,
    FORMAT,
    FORMAT_VERSION,
    ONNX_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ExportError,
    PretrainedEncoder,
    build_modules,
    read_json,
)
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID
from seqae.models.bottleneck import VariationalBottleneck
from seqae.models.builder import SUBSAMPLING
from seqae.runs import Run, load_run
from seqae.version import __version__


def describe(run: Run) -> dict[str, Any]:
    """The config.json of an export of `run`'s encoder."""
    m, model = run.config.model, run.model
    encoder: dict[str, Any] = {"type": m.encoder, "input_dim": m.embed_dim, "hidden_dim": m.hidden_dim,
                               "layers": m.encoder_layers, "dropout": m.dropout,
                               "output_dim": model.encoder.output_dim}
    if m.encoder == "transformer":
        encoder.update(num_heads=m.num_heads, ff_dim=m.ff_dim, max_positions=m.max_positions,
                       cls_token=m.pooling == "cls")
    else:
        encoder["bidirectional"] = m.bidirectional
    if isinstance(model.bottleneck, VariationalBottleneck):
        regularizer, z = "variational", "the posterior mean mu (no sampling)"
    else:
        regularizer = {"none": "none", "l1": "sparse_l1", "kl": "sparse_kl"}[model.bottleneck.sparse]
        z = "sigmoid of the projection" if regularizer == "sparse_kl" else "the linear projection of the pooled states"
    if run.task == "text":
        frontend = {"type": "embedding", "vocab_size": run.tokenizer.vocab_size, "dim": m.embed_dim,
                    "tokenizer": TOKENIZER_FILE, "max_len": run.config.data.max_len}
        special = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "mask": MASK_ID}
    else:
        ex, factor = run.extractor, SUBSAMPLING[m.frontend]
        frontend = {"type": m.frontend, "feature_dim": ex.feature_dim, "dim": m.embed_dim, "features": FEATURES_FILE,
                    "subsampling": factor, "frame_rate_hz": ex.sample_rate / ex.hop_length / factor}
        special = None
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": run.task,
            "model": to_dict(run.config.model), "regularize": to_dict(run.config.regularize), "encoder": encoder,
            "bottleneck": {"pooling": m.pooling, "dim": m.bottleneck_dim, "regularizer": regularizer, "z": z},
            "frontend": frontend, "special_ids": special, "step": run.step, "source_run": str(run.run_dir.resolve()),
            "seqae_version": __version__}


def encoder_of(run: Run) -> PretrainedEncoder:
    """The run's encoder side as a `PretrainedEncoder` (built from the export's config.json, weights copied)."""
    cfg = describe(run)
    stack, bottleneck = build_modules(cfg)
    first = "embedding" if run.task == "text" else "frontend"
    state = {f"encoder.{first}.{k}": v for k, v in getattr(run.model, first).state_dict().items()}
    state.update({f"encoder.body.{k}": v for k, v in run.model.encoder.state_dict().items()})
    state.update({f"bottleneck.{k}": v for k, v in run.model.bottleneck.state_dict().items()})
    text = run.task == "text"
    encoder = PretrainedEncoder(config=cfg, encoder=stack, bottleneck=bottleneck,
                                tokenizer=run.tokenizer if text else None,
                                feature_extractor=None if text else run.extractor, cmvn=None if text else run.cmvn)
    encoder.load_state_dict(state, strict=True)
    return encoder


def _target_ready(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a directory")
    if not list(out_dir.iterdir()):
        return
    try:
        is_export = read_json(out_dir / CONFIG_FILE).get("format") == FORMAT
    except (OSError, ExportError):
        is_export = False
    if not overwrite or not is_export:
        why = "use overwrite (--force) to replace it" if is_export else "not a seqae export, so it is never replaced"
        raise ExportError(f"{out_dir}: exists and is not empty ({why})")


def export_run(run_dir: str | Path, out_dir: str | Path, *, onnx: bool = False, overwrite: bool = False,
               decoder: bool = False) -> Path:
    """Export the encoder side of a run (newest checkpoint) to `out_dir`; returns `out_dir`.

    The directory is written under a temporary name and renamed when complete. With `onnx`, `encoder.onnx` is
    added and checked against PyTorch (see `seqae.export.onnx`). With `decoder` (text runs with a Transformer
    decoder), `decoder.safetensors` and config.json's `decoder` section are added (see `seqae.export.decoder`).
    """
    out_dir = Path(out_dir).resolve()
    _target_ready(out_dir, overwrite)
    run = load_run(run_dir)
    if decoder and (run.task != "text" or run.config.model.decoder != "transformer"):
        what = "a speech run" if run.task != "text" else f"the run's decoder is {run.config.model.decoder}"
        raise ExportError(f"{run.run_dir}: --decoder needs a text run with a Transformer decoder "
                          f"(model.decoder: transformer), which can attend to another encoder's states; {what}")
    encoder = encoder_of(run)
    if decoder:
        encoder.config["decoder"] = decoder_section(run.config.model, run.tokenizer.vocab_size, run.step)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(encoder.config, indent=2) + "\n")
        weights = {k: v.contiguous() for k, v in encoder.state_dict().items()}
        (tmp / WEIGHTS_FILE).write_bytes(save(weights, metadata={"format": FORMAT, "version": str(FORMAT_VERSION)}))
        if decoder:
            (tmp / DECODER_FILE).write_bytes(save(decoder_state(run.model), metadata={"format": FORMAT}))
        if run.task == "text":
            (tmp / TOKENIZER_FILE).write_bytes(run.tokenizer.serialized())
        else:
            features = {"features": run.extractor.settings(), "cmvn": run.cmvn.to_dict() if run.cmvn else None}
            (tmp / FEATURES_FILE).write_text(json.dumps(features) + "\n")
        card = model_card(encoder.config, run.config, run.run_dir, onnx=onnx)
        if decoder:
            card += (f"\n## Decoder\n\n`{DECODER_FILE}` holds the autoencoder's Transformer decoder (a language model "
                     "conditioned on z): `seqae.load_decoder(dir)` gives it with this tokenizer, and `seqae finetune "
                     "translate` starts a translation decoder from it with `decoder_export: <this directory>`.\n")
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        if onnx:
            from seqae.export.onnx import export_onnx

            export_onnx(encoder, tmp / ONNX_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)  # checked above: empty, or a previous export with overwrite
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
