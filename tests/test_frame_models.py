"""Frame autoencoders for speech: front ends, the frame decoder with a reduction factor, the stop head.

Exact front-end lengths for every input length 1..40; padding never changes an encoding (front end included);
every encoder × decoder × front end × r runs with ragged padding and gets gradients everywhere; the loss reads
only real frames and matches a slow reference; steps equal the teacher-forced pass; generation matches a slow
reference and, from a model overfit on four smooth sequences, gives back their lengths and frames.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqae.config import ModelConfig, RegularizerConfig
from seqae.models.builder import build_frame_autoencoder
from seqae.models.encoders import RNNEncoder, TransformerEncoder
from seqae.models.frames import ConvSubsampling, FrameAutoencoder, LinearFrontEnd, Prenet

ARCHS = ["gru", "lstm", "transformer"]
FRONTENDS = ["linear", "conv2", "conv4"]
ENCODER_POOLINGS = [(e, p) for e in ARCHS for p in ("last", "mean", "attention")] + [("transformer", "cls")]
FEAT = 5
ATOL, RTOL = 1e-6, 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny_config(**overrides) -> ModelConfig:
    base = dict(embed_dim=12, hidden_dim=16, decoder_dim=16, num_heads=2, ff_dim=24, bottleneck_dim=10,
                memory_slots=3, encoder_layers=2, decoder_layers=2, dropout=0.0, max_positions=48,
                prenet_dim=12, prenet_dropout=0.5, pooling="mean")
    return ModelConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, feature_dim: int = FEAT, **overrides) -> FrameAutoencoder:
    torch.manual_seed(seed)
    return build_frame_autoencoder(tiny_config(**overrides), feature_dim, regularize=RegularizerConfig())


def ragged_frames(lengths: list[int], *, seed: int, width: int | None = None, garbage: bool = False,
                  feature_dim: int = FEAT) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames [B, width, F]; past each length zeros, or (garbage=True) large random values."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths) if width is None else width
    x = torch.randn(len(lengths), width, feature_dim, generator=gen)  # (B, T, F)
    past = torch.arange(width)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T)
    fill = 100 * torch.randn(x.shape, generator=gen) if garbage else torch.zeros_like(x)
    return torch.where(past[..., None], fill, x), torch.tensor(lengths)


def make_frontend(kind: str, *, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return LinearFrontEnd(input_dim=FEAT, dim=8)
    return ConvSubsampling(input_dim=FEAT, dim=8, factor=int(kind[4:]))


def conv_arithmetic(length: int, layers: int) -> int:
    """Output length of `layers` Conv1d(kernel 3, stride 2, no padding), from torch's documented formula."""
    for _ in range(layers):
        length = max(0, math.floor((length - 3) / 2) + 1)
    return length


# ---- front ends: exact lengths, padding, too-short inputs


@pytest.mark.parametrize("kind", FRONTENDS)
def test_frontend_lengths_exact_alone_and_in_a_padded_batch(kind):
    frontend = make_frontend(kind)
    layers = {"linear": 0, "conv2": 1, "conv4": 2}[kind]
    assert frontend.min_frames == min(n for n in range(1, 41) if conv_arithmetic(n, layers) > 0)
    alone = {}
    with torch.no_grad():
        for n in range(1, 41):
            x = torch.randn(1, n, FEAT)
            expected = conv_arithmetic(n, layers) if layers else n
            assert int(frontend.output_lengths(torch.tensor([n]))) == expected
            if expected == 0:
                with pytest.raises(ValueError, match=rf"needs at least {frontend.min_frames} frames"):
                    frontend(x, torch.tensor([n]))
                continue
            h, h_lengths = frontend(x, torch.tensor([n]))
            assert h.shape == (1, expected, 8) and h_lengths.tolist() == [expected]  # what the conv really made
            alone[n] = h[0]
        valid = sorted(alone)
        x, lengths = ragged_frames(valid, seed=1, width=43, garbage=True)  # 3 columns past the longest
        h, h_lengths = frontend(x, lengths)
    assert h.shape[1] == (conv_arithmetic(43, layers) if layers else 43)
    assert h_lengths.tolist() == [alone[n].shape[0] for n in valid]
    for b, n in enumerate(valid):
        m = alone[n].shape[0]
        torch.testing.assert_close(h[b, :m], frontend(x[b: b + 1, :n], lengths[b: b + 1])[0][0], atol=ATOL, rtol=RTOL)
        assert torch.all(h[b, m:] == 0)  # padded positions hold zeros, whatever the input held there


def test_too_short_input_raises_a_clear_error():
    frontend = make_frontend("conv2")
    with pytest.raises(ValueError, match=r"ConvSubsampling\(factor=2\) needs at least 3 frames .*"
                                         r"got lengths \[2, 1\] at batch rows \[1, 2\]"):
        frontend(torch.randn(3, 5, FEAT), torch.tensor([5, 2, 1]))
    with pytest.raises(ValueError, match=r"factor must be 2 or 4, got 3"):
        ConvSubsampling(input_dim=FEAT, dim=8, factor=3)
    model = tiny_model(frontend="conv4")
    assert model.min_frames == 7
    x, lengths = ragged_frames([9, 6, 7], seed=0)
    message = r"ConvSubsampling\(factor=4\) needs at least 7 .*\[6\] at batch rows \[1\]"
    for call in (lambda: model.encode(x, lengths), lambda: model(x, lengths)):
        with pytest.raises(ValueError, match=message):
            call()
    model(x[[0, 2]], lengths[[0, 2]])  # the others are fine


def test_bad_shapes_and_lengths_name_the_argument():
    model = tiny_model()
    x, lengths = ragged_frames([6, 4], seed=0)
    with pytest.raises(ValueError, match=r"^frames: expected frames \[B, T, 5\], got shape \(2, 6, 4\)"):
        model.encode(x[..., :4], lengths)
    with pytest.raises(ValueError, match=r"^frames: lengths must be in 1\.\.6 .*rows \[0, 1\] have \[7, 0\]"):
        model.encode(x, torch.tensor([7, 0]))
    with pytest.raises(ValueError, match=r"^frames: expected lengths of shape \(2,\)"):
        model.encode(x, torch.tensor([6]))
    with pytest.raises(ValueError, match=r"^targets: lengths must be in 1\.\.3"):
        model(x, lengths, targets=x[:, :3])  # targets shorter than their (default) lengths


# ---- shapes, lengths, loss and gradients for every combination


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("decoder", ARCHS)
@pytest.mark.parametrize("encoder", ARCHS)
def test_forward_shapes_lengths_and_gradients(encoder, decoder, frontend, r):
    """Ragged batch, 2 columns past the longest; then gradients (float64) reach every parameter."""
    model = tiny_model(encoder=encoder, decoder=decoder, frontend=frontend, reduction_factor=r).double()
    x, lengths = ragged_frames([12, 7, 9, 8], seed=1, width=14)
    x = x.double()
    out = model(x, lengths)
    S = math.ceil(14 / r)
    assert out.pred.shape == (4, S * r, FEAT)
    assert out.stop_logits.shape == (4, S)
    assert out.targets.shape == (4, S * r, FEAT)
    assert torch.equal(out.targets[:, :14], x) and torch.all(out.targets[:, 14:] == 0)
    assert torch.equal(out.target_lengths, lengths)
    assert out.z.shape == (4, 10)
    _, _, enc = model.encode(x, lengths)
    assert torch.equal(enc.lengths, model.frontend.output_lengths(lengths))
    loss, stats = model.loss(out)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(stats) == {"frame_loss", "stop_loss", "tokens"}
    assert stats["tokens"] == 36
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient"
        assert param.grad.abs().max() > 1e-10, f"{name}: zero gradient"


# ---- padding never changes an encoding


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("encoder, pooling", ENCODER_POOLINGS)
def test_padding_does_not_change_encoding(encoder, pooling, frontend):
    """Each sequence encoded alone equals the same sequence inside a batch padded (with garbage) to 15 frames."""
    model = tiny_model(encoder=encoder, pooling=pooling, frontend=frontend).eval()
    x, lengths = ragged_frames([9, 13, 7, 11], seed=3, width=15, garbage=True)
    with torch.no_grad():
        z, _, enc = model.encode(x, lengths, return_layers=True)
        for b, n in enumerate(lengths.tolist()):
            z1, _, enc1 = model.encode(x[b: b + 1, :n], lengths[b: b + 1], return_layers=True)
            m = int(enc1.lengths[0])
            assert m == int(enc.lengths[b]) == enc1.states.shape[1]
            torch.testing.assert_close(z[b], z1[0], atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(enc.final[b], enc1.final[0], atol=ATOL, rtol=RTOL)
            assert len(enc.layers) == len(enc1.layers)
            for layer, layer1 in zip(enc.layers, enc1.layers):
                torch.testing.assert_close(layer[b, :m], layer1[0], atol=ATOL, rtol=RTOL)


# ---- the loss reads only real frames


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("decoder", ARCHS)
def test_loss_ignores_padded_frames(decoder, r):
    """Garbage past the lengths (inputs and separate targets, in training mode) changes nothing."""
    model = tiny_model(decoder=decoder, frontend="conv2", reduction_factor=r).train()
    noisy, lengths = ragged_frames([10, 6, 8], seed=4, width=12)
    noisy_g, _ = ragged_frames([10, 6, 8], seed=4, width=12, garbage=True)
    clean, target_lengths = ragged_frames([11, 5, 8], seed=5, width=13)
    clean_g, _ = ragged_frames([11, 5, 8], seed=5, width=13, garbage=True)
    results = []
    for x, y in ((noisy, clean), (noisy_g, clean_g)):
        torch.manual_seed(0)  # the same prenet dropout masks
        out = model(x, lengths, targets=y, target_lengths=target_lengths)
        results.append((out, *model.loss(out)))
    (out1, loss1, stats1), (out2, loss2, stats2) = results
    assert stats1 == stats2 and stats1["tokens"] == 24
    torch.testing.assert_close(loss1, loss2, atol=0, rtol=0)
    assert torch.equal(out1.targets, out2.targets)
    real = torch.arange(out1.pred.shape[1])[None, :] < target_lengths[:, None]  # (B, T_pad)
    torch.testing.assert_close(out1.pred[real], out2.pred[real], atol=0, rtol=0)
    # ...while a real frame does count: change the last real target frame of row 1
    clean_g[1, 4] += 1.0
    torch.manual_seed(0)
    loss3, _ = model.loss(model(noisy_g, lengths, targets=clean_g, target_lengths=target_lengths))
    assert abs(loss3.item() - loss2.item()) > 1e-4


@pytest.mark.parametrize("frame_loss", ["mse", "l1"])
@pytest.mark.parametrize("r", [1, 3])
def test_loss_matches_slow_reference(frame_loss, r):
    model = tiny_model(reduction_factor=r, frame_loss=frame_loss, stop_weight=0.7).eval()
    x, lengths = ragged_frames([7, 3, 9], seed=6, width=10)
    with torch.no_grad():
        out = model(x, lengths)
        loss, stats = model.loss(out)
    errors, stop_terms = [], []
    for b, n in enumerate(lengths.tolist()):
        for t in range(n):
            for f in range(FEAT):
                d = float(out.pred[b, t, f] - x[b, t, f])
                errors.append(d * d if frame_loss == "mse" else abs(d))
        last = (n - 1) // r  # the step holding frame n - 1
        for s in range(last + 1):
            p = 1 / (1 + math.exp(-float(out.stop_logits[b, s])))
            stop_terms.append(-math.log(p) if s == last else -math.log(1 - p))
    frame_ref, stop_ref = sum(errors) / len(errors), sum(stop_terms) / len(stop_terms)
    assert stats["frame_loss"] == pytest.approx(frame_ref, rel=1e-5)
    assert stats["stop_loss"] == pytest.approx(stop_ref, rel=1e-5)
    assert float(loss) == pytest.approx(frame_ref + 0.7 * stop_ref, rel=1e-5)


# ---- step-by-step decoding, prenet dropout, generation


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("decoder", ARCHS)
def test_steps_equal_teacher_forcing(decoder, r):
    model = tiny_model(decoder=decoder, reduction_factor=r).eval()
    x, lengths = ragged_frames([10, 4, 7], seed=7, width=10)
    with torch.no_grad():
        out = model(x, lengths)
        state = model.start(out.z)
        prev, frames, stops = torch.zeros(3, FEAT), [], []
        for s in range(out.stop_logits.shape[1]):
            step_frames, stop, state = model.step(prev, state)
            assert step_frames.shape == (3, r, FEAT) and stop.shape == (3,)
            frames.append(step_frames)
            stops.append(stop)
            prev = out.targets[:, s * r + r - 1]  # teacher forcing: the last real frame of this step
    torch.testing.assert_close(torch.cat(frames, dim=1), out.pred, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(stops, dim=1), out.stop_logits, atol=1e-5, rtol=1e-5)


def test_prenet_dropout_in_training_and_optionally_at_inference():
    x = torch.randn(4, 6, FEAT)
    for always_on in (False, True):
        torch.manual_seed(0)
        prenet = Prenet(input_dim=FEAT, dim=16, dropout=0.5, always_on=always_on)
        assert not torch.equal(prenet(x), prenet(x))  # training: two draws differ
        prenet.eval()
        assert torch.equal(prenet(x), prenet(x)) != always_on


def free_running_reference(model: FrameAutoencoder, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row alone, fed its own last frame for `steps` steps: frames [B, steps·r, F], stop probs [B, steps]."""
    rows_frames, rows_probs = [], []
    for b in range(z.shape[0]):
        state, prev, frames, probs = model.start(z[b: b + 1]), torch.zeros(1, FEAT), [], []
        for _ in range(steps):
            step_frames, stop, state = model.step(prev, state)
            frames.append(step_frames[0])
            probs.append(torch.sigmoid(stop[0]))
            prev = step_frames[:, -1]
        rows_frames.append(torch.cat(frames))
        rows_probs.append(torch.stack(probs))
    return torch.stack(rows_frames), torch.stack(rows_probs)


@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("decoder", ARCHS)
def test_generate_matches_a_slow_reference(decoder, r):
    """Batched generation equals each row decoded alone: stop step, length, frames, zeros past the length."""
    model = tiny_model(decoder=decoder, reduction_factor=r).eval()
    z = torch.randn(5, 10)
    with torch.no_grad():
        max_frames = 4 * r + 1  # not a multiple of r when r > 1
        ref_frames, probs = free_running_reference(model, z, math.ceil(max_frames / r))
        threshold = float(probs[:, 0].median())  # rows above it stop at once, the others later or never
        frames, lengths = model.generate(z, max_frames=max_frames, threshold=threshold)
    crossed = probs > threshold
    stop_step = torch.where(crossed.any(1), crossed.float().argmax(1), torch.full((5,), 10 ** 6))
    expected = ((stop_step + 1) * r).clamp(max=max_frames)
    assert len(set(expected.tolist())) > 1, "degenerate case: every row stops at the same step"
    assert lengths.tolist() == expected.tolist()
    assert frames.shape == (5, int(expected.max()), FEAT)
    for b, n in enumerate(expected.tolist()):
        torch.testing.assert_close(frames[b, :n], ref_frames[b, :n], atol=1e-5, rtol=1e-5)
        assert torch.all(frames[b, n:] == 0)


def test_generate_limits():
    model = tiny_model(reduction_factor=3).eval()
    z = torch.randn(2, 10)
    frames, lengths = model.generate(z, max_frames=7, threshold=1.0)  # sigmoid never exceeds 1: never stops
    assert frames.shape == (2, 7, FEAT) and lengths.tolist() == [7, 7]
    frames, lengths = model.generate(z, max_frames=7, threshold=-1.0)  # stops at the first step
    assert frames.shape == (2, 3, FEAT) and lengths.tolist() == [3, 3]
    frames, lengths = model.generate(z, max_frames=2, threshold=-1.0)  # one step, capped at max_frames
    assert frames.shape == (2, 2, FEAT) and lengths.tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"max_frames must be >= 1, got 0"):
        model.generate(z, max_frames=0)


# ---- a model overfit on four smooth sequences gives them back from z


def smooth_sequences(lengths: list[int], feature_dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinusoid feature trajectories (a different speed and phase per row), zero past each length."""
    t = torch.arange(max(lengths), dtype=torch.float32)[None, :, None]  # (1, T, 1)
    f = torch.arange(feature_dim, dtype=torch.float32)[None, None, :]  # (1, 1, F)
    b = torch.arange(len(lengths), dtype=torch.float32)[:, None, None]  # (B, 1, 1)
    x = torch.sin(0.15 * (b + 1) * t + 0.7 * f + b)  # (B, T, F)
    lengths_t = torch.tensor(lengths)
    return x * (t[..., 0] < lengths_t[:, None])[..., None], lengths_t


@pytest.mark.parametrize("encoder, decoder, frontend, r, prenet_dropout, steps, lr", [
    ("gru", "gru", "linear", 1, 0.0, 200, 5e-3),
    ("transformer", "lstm", "conv2", 1, 0.0, 300, 5e-3),
    ("transformer", "transformer", "conv2", 2, 0.2, 300, 3e-3),
    ("lstm", "gru", "conv4", 3, 0.2, 300, 5e-3),
])
def test_overfit_then_generate_gives_back_lengths_and_frames(encoder, decoder, frontend, r, prenet_dropout,
                                                             steps, lr):
    """Lengths must be exact for r = 1 and rounded up to whole steps for r > 1.

    Thresholds set after seeing it work: with seeds 0-2 every length came out right and the worst per-sequence
    MSE was 0.0033 (the frames' variance is about 0.5), so 0.01 leaves a wide margin. With prenet dropout on,
    the r = 1 lengths were unreliable at this size (the stop step must be exact), so those cases run without it.
    The transformer-lstm case was on the edge at 200 steps (oneDNN's rounding of the linear layers made seed 0 stop
    one frame early); at 300 steps seeds 0-2 came out right on both GEMMs, worst MSE 0.0008.
    """
    lengths = [7, 11, 13, 16]
    x, lengths_t = smooth_sequences(lengths)
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, decoder=decoder, frontend=frontend, reduction_factor=r,
                      prenet_dropout=prenet_dropout, embed_dim=32, hidden_dim=32, decoder_dim=32,
                      bottleneck_dim=16, prenet_dim=32, num_heads=2, ff_dim=64, memory_slots=2, dropout=0.0,
                      max_positions=64)
    model = build_frame_autoencoder(cfg, 8, regularize=RegularizerConfig())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = model.loss(model(x, lengths_t))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        z, _, _ = model.encode(x, lengths_t)
        frames, gen_lengths = model.generate(z, max_frames=24)
    assert gen_lengths.tolist() == [math.ceil(n / r) * r for n in lengths]
    for b, n in enumerate(lengths):
        mse = float((frames[b, :n] - x[b, :n]).pow(2).mean())
        assert mse < 0.01, f"sequence {b} (length {n}): MSE {mse:.4f}"


# ---- the builder


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_builder_wires_widths_from_the_config(encoder, frontend):
    model = tiny_model(encoder=encoder, frontend=frontend, feature_dim=7, reduction_factor=2, prenet_dim=9,
                       frame_loss="l1", stop_weight=0.3)
    if frontend == "linear":
        assert isinstance(model.frontend, LinearFrontEnd)
        assert model.frontend.proj.in_features == 7 and model.frontend.proj.out_features == 12
    else:
        assert isinstance(model.frontend, ConvSubsampling) and model.frontend.factor == int(frontend[4:])
        assert model.frontend.convs[0].in_channels == 7 and model.frontend.convs[-1].out_channels == 12
    if encoder == "transformer":
        assert isinstance(model.encoder, TransformerEncoder) and model.encoder.input_proj.in_features == 12
    else:
        assert isinstance(model.encoder, RNNEncoder) and model.encoder.layers[0].input_size == 12
    assert model.prenet.layers[0].in_features == 7 and model.prenet.layers[-1].out_features == 9
    assert model.decoder.rnn.input_size == 9 + 10  # prenet output + z fed to every step
    assert model.out_proj.out_features == 2 * 7
    assert (model.reduction_factor, model.frame_loss, model.stop_weight) == (2, "l1", 0.3)
    assert model.prenet.dropout == 0.5 and not model.prenet.always_on
