"""Exported encoders: a self-contained directory (config.json, model.safetensors, front end, model card) that loads
in one call, with no pickle.

- `encoder`: `load_encoder(dir)` -> `PretrainedEncoder` (raw sentences, waveforms or audio files -> per-position
  states, every layer and z); depends on the models, the front ends and the config only.
- `decoder`: `load_decoder(dir)` -> (`TokenDecoder`, tokenizer) of an export written with `--decoder`.
- `write`: `export_run(run_dir, out_dir)`: a run's encoder side (and its decoder on request), opened with
  `seqae.runs.load_run`.
- `onnx`: `encoder.onnx` with dynamic batch and time axes, checked against PyTorch.
- `card`: the export's README.md.
"""

from seqae.export.decoder import load_decoder  # noqa: F401
from seqae.export.encoder import EncoderResult, ExportError, PretrainedEncoder, build_modules, load_encoder  # noqa: F401
from seqae.export.write import export_run  # noqa: F401
from seqae.models.encoders import EncoderStack  # noqa: F401

__all__ = ["EncoderResult", "EncoderStack", "ExportError", "PretrainedEncoder", "build_modules", "export_run",
           "load_decoder", "load_encoder"]
