"""Corpora -> sequences -> batches; every skipped, truncated or repaired item is counted.

- `text`: text corpora (local .txt/.jsonl/.csv/.parquet, hub datasets) -> SentencePiece sequences.
- `speech`: a speech corpus (manifest or folder of audio) -> normalised feature tensors, CMVN, length limits.
- `manifest`: manifest rows (path, text, speaker, label) and folder scans; `corpora`: hub and local corpus trees.
- `pairs`: partners of the correspondence autoencoder; `sentences`: sentence files for evaluation and apps.
- `bitext`: translation pairs files (tab-separated, plain or .gz) -> (source, target) pairs, skips by reason.
- `batching`: length-bucketed batches under a token budget; `stream`: corpora read lazily, pool by pool.

Import the submodules directly; this package imports nothing heavy.
"""
