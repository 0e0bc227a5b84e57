"""Front ends: raw input -> what a model reads, shared by training, evaluation and export.

- `tokenizer`: SentencePiece pieces with seqae's special ids (pad, unk, bos, eos, mask).
- `audio`: reading and writing audio files (soundfile) as mono float waveforms, with clear errors.
- `features`: log-Mel / MFCC / Kaldi fbank from torchaudio, global CMVN, and the per-file feature cache.
- `collate`: ragged sequences -> a padded batch and its lengths; `summaries`: fixed-size frame summaries.

Front ends import nothing but other front ends and `seqae.config`.
"""
