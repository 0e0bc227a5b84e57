"""Corruption (noise) library for tokens and frames: exact ratios, explicit generators.

See ``seqae.noise.tokens`` (BART span masking, T5 span corruption, TSDAE noises),
``seqae.noise.frames`` (time/frequency masking, Gaussian noise, knockout, waveform noise) and
``seqae.noise.pipeline`` (composition of the config's validated ``noise:`` steps, seeded by (seed, epoch,
index)); each noise's settings and defaults are in ``seqae.config.noise``.
"""

from seqae.noise.frames import frame_knockout, freq_mask, gaussian_noise, time_mask, waveform_add_noise
from seqae.noise.pipeline import FRAME_NOISES, TOKEN_NOISES, NoisePipeline, mix_seed
from seqae.noise.tokens import (
    SpecialIds,
    delete,
    insert,
    knockout,
    replace,
    rotate,
    shuffle,
    span_mask,
    span_mask_plan,
    t5_lengths,
    t5_noise_mask,
    t5_raw_length_for_inputs,
    t5_span_corruption,
)

__all__ = [
    "FRAME_NOISES",
    "TOKEN_NOISES",
    "NoisePipeline",
    "SpecialIds",
    "delete",
    "frame_knockout",
    "freq_mask",
    "gaussian_noise",
    "insert",
    "knockout",
    "mix_seed",
    "replace",
    "rotate",
    "shuffle",
    "span_mask",
    "span_mask_plan",
    "t5_lengths",
    "t5_noise_mask",
    "t5_raw_length_for_inputs",
    "t5_span_corruption",
    "time_mask",
    "waveform_add_noise",
]
