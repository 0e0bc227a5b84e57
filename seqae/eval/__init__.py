"""Evaluation of trained runs.

- `metrics`: token reconstruction counts and teacher-forced accuracy (what training's held-out evaluation logs).
- `tokens`: held-out evaluation of a token autoencoder (teacher-forced, greedy and beam reconstruction).
- `speech`: same-different AP and frame baselines for speech embeddings, spectrogram plots, Griffin-Lim.
- `report`: `seqae evaluate`: report.md, report.json and figures of a run on its held-out data or other data.
- `plots`: the report's figures (matplotlib, Agg).
- `sweep`: `seqae sweep`: the same recipe at several bottleneck sizes, compared by length.
"""
