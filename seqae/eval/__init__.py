"""Evaluation of trained runs.

- `metrics`: token reconstruction counts, teacher-forced accuracy and length bins (what training logs).
- `tokens`: held-out evaluation of a token autoencoder (teacher-forced, greedy and beam reconstruction).
- `text`, `speech`: reconstruction from z scored per item and by length (BLEU; MSE and MCD); same-different AP.
- `embeddings`: how well z separates labels (AP, a logistic-regression probe, precision@k).
- `report`: `seqae evaluate`: report.md, report.json and figures of a run on its held-out data or other data.
- `plots`: the figures (matplotlib, Agg); `sweep`: `seqae sweep`, one recipe at several bottleneck sizes.
"""
