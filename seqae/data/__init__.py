"""Data reading and batching: `seqae.data.text` (text corpora) and `seqae.data.batching`
(token-budget batches). Import the submodules directly; this package imports nothing heavy."""
