"""ONNX export of a `PretrainedEncoder`: `(x, lengths) -> (states, out_lengths, z)` with dynamic batch and time.

Dimension letters: B batch, T time, F feature bins, E input width, H RNN hidden width per direction,
D encoder width, Z bottleneck width.

Packed sequences do not export, so RNN encoders are exported through `PaddedRNN`, which gives the packed
encoder's numbers on a padded batch: the forward direction runs over the padded batch (padding comes after
every real step, so it cannot change them), the backward direction runs over each sequence reversed within its
length (a gather with indices built from the lengths), and the summary state of each direction is gathered at
position length - 1 of its run. Outputs past each length are zeroed, as `pad_packed_sequence` leaves them.
The Transformer encoder already works on padded batches with a key mask and is exported as it is.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from seqae.export.encoder import PretrainedEncoder
from seqae.models.encoders import EncoderOutput, RNNEncoder
from seqae.models.layers import lengths_to_mask

INPUT_NAMES = ("x", "lengths")
OUTPUT_NAMES = ("states", "out_lengths", "z")
EAGER_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4


def reverse_index(lengths: Tensor, T: int | Tensor) -> Tensor:
    """lengths: [B] -> idx [B, T] with idx[b, t] = lengths[b] - 1 - t for t < lengths[b], else t (an involution)."""
    t = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    n = lengths[:, None]  # (B, 1)
    return torch.where(t < n, n - 1 - t, t)


def gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x: [B, T, C], index: [B, T'] -> x[b, index[b, t]]: [B, T', C]."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def _one_direction(rnn: nn.RNNBase, suffix: str) -> nn.RNNBase:
    """A one-layer, one-direction copy of direction `suffix` ("" or "_reverse") of `rnn`."""
    single = type(rnn)(rnn.input_size, rnn.hidden_size, batch_first=True, bias=rnn.bias)
    with torch.no_grad():
        for name, param in single.named_parameters():
            param.copy_(getattr(rnn, name + suffix))
    return single


class PaddedRNN(nn.Module):
    """`RNNEncoder`'s computation on a padded batch, without packing (eval mode: no dropout between layers)."""

    def __init__(self, encoder: RNNEncoder) -> None:
        super().__init__()
        self.output_dim = encoder.output_dim
        self.forward_rnns = nn.ModuleList(_one_direction(rnn, "") for rnn in encoder.layers)
        self.backward_rnns = nn.ModuleList(_one_direction(rnn, "_reverse") for rnn in encoder.layers
                                           if rnn.bidirectional)

    def forward(self, x: Tensor, lengths: Tensor, *, return_layers: bool = False) -> EncoderOutput:
        """x: [B, T, E], lengths: [B] -> EncoderOutput with states [B, T, D] (zeros past each length)."""
        T = x.shape[1]
        keep = lengths_to_mask(lengths, T)[..., None].to(x.dtype)  # (B, T, 1)
        reverse = reverse_index(lengths, T)  # (B, T)
        last = (lengths - 1).clamp(min=0)[:, None]  # (B, 1)
        h, layers, finals = x, [], []
        for i, forward_rnn in enumerate(self.forward_rnns):
            out_f, _ = forward_rnn(h)  # (B, T, H)
            outs, finals = [out_f], [gather_time(out_f, last)[:, 0]]
            if self.backward_rnns:
                out_b, _ = self.backward_rnns[i](gather_time(h, reverse))  # (B, T, H), time reversed per sequence
                outs.append(gather_time(out_b, reverse))
                finals.append(gather_time(out_b, last)[:, 0])  # after the whole sequence backward
            h = torch.cat(outs, dim=-1) * keep  # (B, T, D)
            layers.append(h)
        final = torch.cat(finals, dim=-1)  # (B, D): forward last state, then backward first state
        return EncoderOutput(states=h, lengths=lengths, final=final, layers=layers if return_layers else [h])


class OnnxEncoder(nn.Module):
    """The export graph: (x: ids [B, T] or frames [B, T, F], lengths [B]) -> (states [B, T', D], lengths' [B],
    z [B, Z]).

    Shares the front end and bottleneck of `encoder`; RNN bodies are replaced by a `PaddedRNN` copy.
    """

    def __init__(self, encoder: PretrainedEncoder) -> None:
        super().__init__()
        stack = encoder.encoder
        self.embedding, self.frontend, self.bottleneck = stack.embedding, stack.frontend, encoder.bottleneck
        self.body = PaddedRNN(stack.body) if isinstance(stack.body, RNNEncoder) else stack.body
        self.eval()

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.embedding is not None:
            h = self.embedding(x)  # (B, T, E)
        else:
            h, lengths = self.frontend(x, lengths)  # (B, T', E)
        enc = self.body(h, lengths)
        z, _ = self.bottleneck(enc)
        return enc.states, enc.lengths, z


def example_inputs(encoder: PretrainedEncoder, lengths: list[int], *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A ragged batch for `encoder`: ids [B, T] (bos ... eos, pad after) or frames [B, T, F] (zeros after)."""
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    mask = lengths_to_mask(lengths_t, max(lengths))  # (B, T)
    fe = encoder.config["frontend"]
    if encoder.kind == "text":
        ids = torch.randint(5, fe["vocab_size"], (len(lengths), max(lengths)), generator=g)  # (B, T)
        ids[:, 0] = encoder.config["special_ids"]["bos"]
        ids[torch.arange(len(lengths)), lengths_t - 1] = encoder.config["special_ids"]["eos"]
        return ids.masked_fill(~mask, encoder.config["special_ids"]["pad"]), lengths_t
    frames = torch.randn(len(lengths), max(lengths), fe["feature_dim"], generator=g)  # (B, T, F)
    return frames * mask[..., None], lengths_t


def max_abs_diff(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> float:
    """Largest |a - b| over pairs of outputs (shapes must agree)."""
    worst = 0.0
    for x, y in zip(a, b):
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(f"output shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        if x.numel():
            worst = max(worst, float((x.detach().cpu().double() - y.detach().cpu().double()).abs().max()))
    return worst


def _eager(encoder: PretrainedEncoder, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    out = encoder.encode_inputs(x, lengths)
    return out.states, out.lengths, out.z


def _lengths_for(encoder: PretrainedEncoder, count: int, longest: int) -> list[int]:
    """Distinct ragged lengths, all long enough for the front end (and within a Transformer's positions)."""
    shortest = encoder.encoder.frontend.min_frames if encoder.kind == "speech" else 3
    longest = max(longest, shortest + count)
    limit = encoder.config["encoder"].get("max_positions")
    longest = min(longest, limit) if limit and encoder.kind == "text" else longest
    return [longest - (i * (longest - shortest)) // max(count - 1, 1) for i in range(count)]


@torch.no_grad()
def export_onnx(encoder: PretrainedEncoder, path: str | Path, *, opset: int = 17, check: bool = True) -> Path:
    """Write `encoder` (run in eval mode) as ONNX. Before exporting, the export graph must match the eager encoder
    on a ragged batch (max abs diff <= 1e-5); with `check` and onnxruntime installed, the file must match PyTorch
    on a ragged batch of another batch size and length (<= 1e-4). A mismatch raises RuntimeError."""
    path, was_training = Path(path), encoder.training
    try:
        return _export(encoder.eval(), path, opset=opset, check=check)
    finally:
        encoder.train(was_training)


def _export(encoder: PretrainedEncoder, path: Path, *, opset: int, check: bool) -> Path:
    graph, device = OnnxEncoder(encoder), next(encoder.parameters()).device
    x, lengths = (t.to(device) for t in example_inputs(encoder, _lengths_for(encoder, 2, 12)))
    diff = max_abs_diff(graph(x, lengths), _eager(encoder, x, lengths))
    if diff > EAGER_TOLERANCE:
        raise RuntimeError(f"the export graph differs from the eager encoder by {diff:.3g} (> {EAGER_TOLERANCE})")
    time_axis = {0: "batch", 1: "time"}
    axes = {"x": time_axis, "lengths": {0: "batch"}, "states": time_axis, "out_lengths": {0: "batch"},
            "z": {0: "batch"}}
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice, and tracer notes on Python-side shape checks, which are
        # constant in the graph; the numbers are checked instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x, lengths), str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), dynamic_axes=axes)
    if check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            warnings.warn(f"{path}: onnxruntime is not installed, so the ONNX file was not checked", stacklevel=2)
            return path
        x2, lengths2 = (t.to(device) for t in example_inputs(encoder, _lengths_for(encoder, 3, 17), seed=1))
        diff = max_abs_diff(run_onnx(path, x2, lengths2), _eager(encoder, x2, lengths2))
        if diff > ONNX_TOLERANCE:
            raise RuntimeError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE})")
    return path


def run_onnx(path: str | Path, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Run an exported encoder with onnxruntime (CPU): -> (states, out_lengths, z) as tensors."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(OUTPUT_NAMES), {"x": x.cpu().numpy(), "lengths": lengths.cpu().numpy()})
    return tuple(torch.from_numpy(o) for o in outputs)


__all__ = ["OnnxEncoder", "PaddedRNN", "example_inputs", "export_onnx", "gather_time", "max_abs_diff",
           "reverse_index", "run_onnx"]
