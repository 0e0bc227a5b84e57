"""The per-position objective of speech autoencoders (`model.frame_prediction_weight`): a head on each encoder
state predicts the clean frames under it, scored with L1 on the frames the noise corrupted (TERA-style).

Zero loss when the prediction equals the target; the loss reads exactly the corrupted real frames under a state
(padding and uncovered frames change nothing); its gradient reaches the encoder; off by default with no extra
parameter (older runs keep loading); the speech task feeds it the clean frames, also with neighbour targets; an
export leaves the head out.
"""

from __future__ import annotations

import pytest
import torch
from test_frame_models import FEAT, ragged_frames, tiny_config
from test_speech_task import make_config

from seqae.config import ConfigError, ModelConfig, RegularizerConfig
from seqae.models.builder import SUBSAMPLING, build_frame_autoencoder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def model_with_head(frontend: str = "conv2", weight: float = 1.0, **overrides):
    torch.manual_seed(0)
    cfg = tiny_config(frontend=frontend, frame_prediction_weight=weight, dropout=0.0, **overrides)
    return build_frame_autoencoder(cfg, FEAT, regularize=RegularizerConfig()).eval()


def slow_reference(model, frames, lengths, clean, corrupted):
    """The loss from its definition, one sequence and one state at a time."""
    f = model.frames_per_state
    total, count = 0.0, 0
    for b in range(frames.shape[0]):
        _, _, enc = model.encode(frames[b: b + 1, : int(lengths[b])], lengths[b: b + 1])
        pred = model.frame_head(enc.states[0])  # (S, f·F)
        picked = [(s, j) for s in range(int(enc.lengths[0])) for j in range(f) if corrupted[b, s * f + j]]
        for s, j in picked:
            total += (pred[s, j * FEAT: (j + 1) * FEAT] - clean[b, s * f + j]).abs().sum()
        count += len(picked) * FEAT
    return total / count


@pytest.mark.parametrize("frontend", ["linear", "conv2", "conv4"])
def test_loss_reads_the_corrupted_real_frames_under_each_state(frontend):
    model = model_with_head(frontend)
    assert model.frames_per_state == SUBSAMPLING[frontend]
    frames, lengths = ragged_frames([17, 11, 23], seed=1, garbage=True)
    clean = ragged_frames([17, 11, 23], seed=2, garbage=True)[0]
    corrupted = torch.rand(frames.shape[:2], generator=torch.Generator().manual_seed(3)) < 0.4  # (B, T), padding too
    with torch.no_grad():
        out = model(frames, lengths, clean=clean, corrupted=corrupted)
        expected = slow_reference(model, frames, lengths, clean, corrupted)
    torch.testing.assert_close(out.aux["frame_prediction"], expected, atol=1e-5, rtol=1e-5)


def test_without_corrupted_frames_every_covered_real_frame_counts():
    model = model_with_head("conv2", weight=0.5)
    frames, lengths = ragged_frames([15, 9], seed=4)
    everything = torch.ones(frames.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        none = model(frames, lengths).aux["frame_prediction"]  # clean = frames, nothing corrupted
        expected = slow_reference(model, frames, lengths, frames, everything)
        assert torch.equal(model(frames, lengths, corrupted=torch.zeros_like(everything)).aux["frame_prediction"],
                           none)
    torch.testing.assert_close(none, 0.5 * expected, atol=1e-5, rtol=1e-5)


def test_zero_loss_when_the_head_predicts_the_target():
    model = model_with_head("conv2")
    frames, lengths = ragged_frames([14, 10], seed=5)
    with torch.no_grad():
        _, _, enc = model.encode(frames, lengths)
        pred = model.frame_head(enc.states).view(2, -1, FEAT)  # (B, S·f, F)
        clean = torch.zeros_like(frames)
        clean[:, : pred.shape[1]] = pred  # the target is what the head predicts
        loss = model.frame_prediction(enc, clean, lengths, corrupted=torch.ones(frames.shape[:2], dtype=torch.bool))
    assert float(loss) == 0.0


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_gradient_reaches_the_encoder_and_the_head(encoder):
    model = model_with_head("conv2", encoder=encoder).train()
    frames, lengths = ragged_frames([16, 12, 7], seed=6)
    corrupted = torch.zeros(frames.shape[:2], dtype=torch.bool)
    corrupted[:, 2:6] = True
    out = model(frames * ~corrupted[..., None], lengths, clean=frames, corrupted=corrupted)
    out.aux["frame_prediction"].backward()  # this term alone
    for name, p in model.named_parameters():
        if name.startswith(("frontend.", "encoder.", "frame_head.")):
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        else:  # the bottleneck and the decoder are not asked for it
            assert p.grad is None or not bool(p.grad.any()), name


def test_the_full_loss_adds_the_weighted_term_and_overfits_masked_frames():
    model = model_with_head("linear", 2.0)
    frames, lengths = ragged_frames([12, 9], seed=7)
    corrupted = torch.zeros(frames.shape[:2], dtype=torch.bool)
    corrupted[:, 3:7] = True
    masked = frames * ~corrupted[..., None]
    model.train()
    out = model(masked, lengths, clean=frames, corrupted=corrupted)
    total, stats = model.loss(out)
    assert stats["frame_prediction"] == pytest.approx(float(out.aux["frame_prediction"].detach()))
    assert float(total.detach()) == pytest.approx(stats["frame_loss"] + stats["stop_loss"] + stats["frame_prediction"],
                                         rel=1e-5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = stats["frame_prediction"]
    for _ in range(150):
        optimizer.zero_grad()
        loss = model(masked, lengths, clean=frames, corrupted=corrupted).aux["frame_prediction"]
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.1 * first  # it fills in the masked frames of this batch from their context


def test_off_by_default_with_no_extra_parameters_and_a_clear_config_error():
    model = build_frame_autoencoder(tiny_config(), FEAT, regularize=RegularizerConfig())
    assert model.frame_prediction_weight == 0 and not hasattr(model, "frame_head")
    frames, lengths = ragged_frames([9, 6], seed=8)
    assert "frame_prediction" not in model(frames, lengths).aux
    with pytest.raises(ConfigError, match="model.frame_prediction_weight"):
        ModelConfig(frame_prediction_weight=-1.0)


def test_the_speech_task_feeds_clean_frames_also_with_neighbour_targets(repo, tmp_path, speech_feature_cache):
    from seqae.tasks.speech import SpeechTask

    config = make_config(repo, speech_feature_cache, model={"frame_prediction_weight": 1.0, "frontend": "conv2"},
                         noise=[{"type": "time_mask", "ratio": 0.3, "span": 4}])
    task = SpeechTask(config, tmp_path / "run", targets="neighbours")
    indices = [i for i in range(len(task.data.train)) if task.target_index(i, 0) != i][:3]
    assert indices, "no neighbour pair to test with"
    batch = task.batch(indices, epoch=0)
    for b, i in enumerate(indices):
        n = task.train_lengths()[i]
        torch.testing.assert_close(batch["clean"][b, :n], task.data.train[i])  # the input's own clean frames
    loss, stats = task.loss(batch)
    loss.backward()
    assert stats["frame_prediction"] > 0 and task.model.frame_head.weight.grad is not None


def test_an_export_leaves_the_head_out(repo, tmp_path, speech_feature_cache):
    from seqae.export import export_run, load_encoder
    from seqae.train import pretrain

    config = make_config(repo, speech_feature_cache, model={"frame_prediction_weight": 1.0},
                         train={"max_steps": 4, "checkpoint_every": 4},
                         noise=[{"type": "time_mask", "ratio": 0.3, "span": 4}])
    metrics = pretrain(config, tmp_path / "run")
    assert metrics["heldout_mse"] > 0
    export_run(tmp_path / "run", tmp_path / "export")
    encoder = load_encoder(tmp_path / "export")
    assert not any("frame_head" in k for k in encoder.state_dict()) and any(encoder.state_dict())
