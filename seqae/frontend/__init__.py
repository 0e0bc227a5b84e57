"""Front ends: raw input -> what a model reads, shared by training, evaluation and export.

- `tokenizer`: SentencePiece pieces with seqae's special ids (pad, unk, bos, eos, mask).
- `audio`: reading audio files (soundfile) to mono float waveforms, with clear errors.
- `features`: log-Mel / MFCC / Kaldi fbank from torchaudio, global CMVN, and the per-file feature cache.
"""
