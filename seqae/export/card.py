"""The model card (README.md) of an export: what it is, data, training, metrics, loading, and its keys elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqae.config import Config, to_dict
from seqae.export.encoder import FEATURES_FILE, ONNX_FILE, TOKENIZER_FILE


def _scalars(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted (key, value) pairs of the numbers and strings in nested dicts (lists left out)."""
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _scalars(v, f"{prefix}{k}.")]
    return [(prefix[:-1], data)] if isinstance(data, (int, float, str)) else []


def _optional_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None


_CARD = """# seqae {kind} encoder

The encoder half of a sequence autoencoder pretrained without labels (seqae {version}): a decoder, not included,
was trained to rebuild each input from the {z_dim}-dim bottleneck z.

- input: {front}
- encoder: {arch}, {layers} layer(s), output width {output_dim}
- bottleneck: {pooling} pooling, regulariser {regularizer}; z is {z}

## Data

{data}

## Training

Exported from `{source}` at step {step} (the config asked for {max_steps}); noise: {noise}.

## Metrics (the run's metrics.json)

{metrics}

## Loading

```python
import seqae

enc = seqae.load_encoder("THIS_DIR")
out = {call}  # out.states [B, T, D], out.lengths [B], out.layers, out.z [B, Z]
x, lengths = enc.prepare(...)  # the front end alone; enc.encode_inputs(x, lengths) is the differentiable part
```
{onnx}
## The weights in fairseq or ESPnet

`model.safetensors` holds `encoder.{first}.*` ({first_what}), `encoder.body.*` (the sequence encoder: PyTorch
`nn.GRU`/`nn.LSTM` parameters per layer, or seqae's Transformer blocks) and `bottleneck.*` (pooling and the
projection to z). The names are seqae's own: no stock fairseq or ESPnet encoder has these modules, so prefix loading
works only into an encoder whose submodules are seqae's (for example a wrapper holding the `{first}` and `body`
modules that `seqae.export.build_modules(config)` builds), or after renaming the keys to fit another architecture
of the same shapes. Both toolkits load pickled PyTorch files, so convert first. These recipes follow the two
toolkits' loading code; they are not tested here (neither toolkit is a seqae dependency).

- fairseq, `--load-pretrained-encoder-from encoder.pt`: reads `torch.load(...)["model"]`, keeps the keys that start
  with `encoder`, strips `encoder.` and loads them into the model's encoder with `strict=True` (`bottleneck.*` is
  ignored). Its checkpoint loader upgrades old checkpoints and fails without training bookkeeping, so save:
  `torch.save({{"model": load_file("model.safetensors"), "args": None, "cfg": None, "extra_state":
  {{"train_iterator": None}}, "optimizer_history": [{{"criterion_name": "none", "optimizer_name": "none",
  "lr_scheduler_state": {{}}, "num_updates": 0}}]}}, "encoder.pt")`.
- ESPnet, `--init_param encoder.pth:encoder:encoder`: reads `torch.load("encoder.pth")` as a state dict, keeps the
  keys that start with `encoder`, strips the prefix and loads them into `model.encoder`; names or shapes that differ
  fail, or with `--ignore_init_mismatch true` are skipped with a warning and stay untrained. Save
  `torch.save(load_file("model.safetensors"), "encoder.pth")`.
- Either way the model must see the inputs this encoder was trained on: {inputs}
"""


def model_card(cfg: dict[str, Any], config: Config, run_dir: Path, *, onnx: bool = False) -> str:
    """README.md of an export: what it is, data, training, metrics, loading, and its keys in other toolkits."""
    enc, bn, fe, text = cfg["encoder"], cfg["bottleneck"], cfg["frontend"], cfg["kind"] == "text"
    if enc["type"] == "transformer":
        arch = f"Transformer ({enc['num_heads']} heads, feed-forward {enc['ff_dim']})"
    else:
        arch = f"{'bidirectional' if enc['bidirectional'] else 'unidirectional'} {enc['type'].upper()}"
    if text:
        front = f"SentencePiece pieces (`{TOKENIZER_FILE}`, {fe['vocab_size']}) embedded in {fe['dim']} dims"
        inputs = "this tokenizer's ids, with bos (2) and eos (3) around each sentence."
    else:
        front = (f"{fe['feature_dim']}-dim features (`{FEATURES_FILE}`: settings and CMVN statistics), a {fe['type']} "
                 f"front end to {fe['dim']} dims, about {fe['frame_rate_hz']:g} frames/s out")
        inputs = ("features computed as `features.json` says (seqae's FeatureExtractor) and normalised with its CMVN "
                  "statistics, not the toolkit's own front end.")
    stats, metrics = _optional_json(run_dir / "data_stats.json"), _optional_json(run_dir / "metrics.json")
    data = [f"- train: `{config.data.train}`", f"- held out: `{config.data.heldout}`"]
    data += [f"- {k}: {v}" for k, v in _scalars(stats or {}) if not k.startswith("feature_cache")]
    table = ["| metric | value |", "|---|---|"]
    table += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in _scalars(metrics or {})]
    return _CARD.format(
        kind=cfg["kind"], version=cfg["seqae_version"], z_dim=bn["dim"], front=front, arch=arch, layers=enc["layers"],
        output_dim=enc["output_dim"], pooling=bn["pooling"], regularizer=bn["regularizer"], z=bn["z"],
        data="\n".join(data) + ("" if stats else "\n- (the run has no data_stats.json)"), source=cfg["source_run"],
        step=cfg["step"], max_steps=config.train.max_steps, noise=to_dict(config)["noise"] or "none",
        metrics="\n".join(table) if metrics else "None: the run had not finished when it was exported.",
        call='enc(["A sentence."])' if text else "enc([waveform], sample_rate=rate)  # 1-D waveforms, any rate",
        first="embedding" if text else "frontend", first_what="token embedding" if text else "frame front end",
        inputs=inputs, onnx=f"\n`{ONNX_FILE}` maps `(x, lengths)`, as `prepare` returns them, to `(states, "
        "out_lengths, z)`, with dynamic batch and time axes.\n" if onnx else "")
