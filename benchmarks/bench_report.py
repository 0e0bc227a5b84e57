"""Headline figures, goals and RESULTS.md from the per-configuration results of one run."""

from __future__ import annotations

import statistics
from typing import Any

GOALS = {
    "mfu_transformer": (0.5, "Transformer AE training reaches >= 50% of the measured fp32 GEMM throughput (the faster of BLAS and oneDNN)"),
    "ratio_vs_naive": (1.5, "seqae trains >= 1.5x the sentences/s of a naive loop on the same model"),
    "ratio_vs_tsdae": (2.0, "seqae's denoising Transformer AE trains >= 2x TSDAE's sentences/s"),
    "padding_efficiency": (0.95, ">= 95% of the positions in seqae's batches are real tokens"),
    "decode_cache_speedup_64": (3.0, "cached greedy decoding >= 3x uncached at length 64"),
    "features_x_realtime": (1000.0, "features >= 1000x real time, and a second epoch spends no time on features"),
}


def _get(results: dict[str, Any], name: str, *keys: str) -> Any:
    node = results.get(name)
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _params(configs: dict[str, Any], *, per_token: bool = True) -> int | None:
    """N of the 6·N·tokens count: the parameters used once per token (results from before that figure existed:
    every matrix-product parameter), or with `per_token=False` every matrix-product parameter."""
    tt = "train/transformer-transformer"
    per = _get(configs, tt, "per_token_params") if per_token else None
    return per or _get(configs, tt, "matmul_params")


def head_fastest(configs: dict[str, Any], *, per_token: bool = True) -> float | None:
    """The fastest Transformer window's MFU against the run's best square GEMM (the figure before pairing)."""
    gemms = [g for g in (_get(configs, "gemm", "fp32_gflops"), _get(configs, "gemm/end", "fp32_gflops")) if g]
    params = _params(configs, per_token=per_token)
    tokens = _get(configs, "train/transformer-transformer", "tokens_per_s_real")
    return 6 * params * tokens / (max(gemms) * 1e9) if params and tokens and gemms else None


def paired_mfu(configs: dict[str, Any], *, per_token: bool = True) -> float | None:
    """The median window's 6·N·tokens/s against the GEMM speed timed around it (else the fastest window against
    the best GEMM)."""
    params = _params(configs, per_token=per_token)
    paired = [6 * params * w["tokens_per_s_real"] / (w["window_gemm_gflops"] * 1e9)
              for w in _get(configs, "train/transformer-transformer", "windows") or []
              if params and w.get("window_gemm_gflops")]
    return statistics.median(paired) if paired else head_fastest(configs, per_token=per_token)


def headline(configs: dict[str, Any]) -> dict[str, Any]:
    """The required keys (None where a configuration did not run or failed)."""
    tt = "train/transformer-transformer"
    mfu = paired_mfu(configs)
    peers = [_get(configs, n, "sentences_per_s") for n in ("peer/tsdae-loop", "peer/tsdae-trainer")]
    peers = [p for p in peers if p]
    epochs = _get(configs, "features", "cached_epochs") or []
    return {
        "mfu_transformer": mfu,
        "mfu_transformer_fastest_vs_best_gemm": head_fastest(configs),
        "mfu_transformer_all_params": paired_mfu(configs, per_token=False),
        "ratio_vs_naive": _ratio(_get(configs, tt, "sentences_per_s"),
                                 _get(configs, "naive/transformer-transformer", "sentences_per_s")),
        "ratio_vs_tsdae": _ratio(_get(configs, "denoise/seqae-transformer", "sentences_per_s"),
                                 max(peers) if peers else None),
        "padding_efficiency": _get(configs, tt, "corpus_padding_efficiency"),
        "decode_cache_speedup_64": _get(configs, "decode", "lengths", "64", "speedup"),
        "features_x_realtime": _get(configs, "features", "x_realtime"),
        "features_second_epoch_feature_s": epochs[1]["feature_s"] if len(epochs) > 1 else None,
    }


def goals(head: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each goal: target, measured value, met or not, and the gap (measured / target)."""
    out = {}
    for key, (target, text) in GOALS.items():
        value = head.get(key)
        met = None if value is None else value >= target
        if key == "features_x_realtime" and met is not None:
            met = met and head.get("features_second_epoch_feature_s") == 0.0
        out[key] = {"goal": text, "target": target, "value": value, "met": met,
                    "fraction_of_target": None if value is None else value / target}
    return out


def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}" if abs(x) < 1e6 else f"{x:,.0f}"
    return str(x)


def _kernels(gemm: dict[str, Any]) -> str:
    """"blas 180 / onednn 415" from a GEMM measurement (the older single-kernel results: its one figure)."""
    rates = [f"{k} {_f(gemm[f'{k}_fp32_gflops'], 0)}" for k in ("blas", "onednn") if gemm.get(f"{k}_fp32_gflops")]
    return " / ".join(rates) or _f(gemm.get("fp32_gflops"), 0)


def _why(key: str, configs: dict[str, Any], head: dict[str, Any]) -> str:
    """Measured evidence for a goal that is not met."""
    tt = configs.get("train/transformer-transformer", {})
    if key == "mfu_transformer":
        prof, gemm = tt.get("profile") or {}, configs.get("gemm", {})
        shapes = ", ".join(f"{s['m']}x{s['k']}x{s['n']}: {_kernels(s)}" for s in gemm.get("model_shapes", []))
        top = ", ".join(f"{t['op']} {_f(100 * t['share'], 0)}%" for t in prof.get("top_ops", [])[:5])
        end = configs.get("gemm/end", {})
        windows = "; ".join(f"{_f(w['tokens_per_s_real'], 0)} tokens/s against {_f(w['window_gemm_gflops'], 0)} GFLOP/s"
                            for w in tt.get("windows", []) if w.get("window_gemm_gflops"))
        paired = (f"The figure is the median over the {len(tt.get('windows', []))} timed windows of each window's "
                  f"6 × parameters × real tokens/s against the square GEMM timed just before and after it (the faster "
                  f"of the two): {windows}. " if windows else "")
        if tt.get("per_token_params"):
            paired += (f"Parameters: the {_f(tt['per_token_params'], 0)} used once per token, of "
                       f"{_f(tt.get('matmul_params'), 0)} in matrix products (the bottleneck, the memory projection and "
                       f"cross-attention's keys and values run once per sequence); counting all of them would read "
                       f"{_f(head.get('mfu_transformer_all_params'), 3)}. ")
        return (f"{paired}torch.profiler over {prof.get('steps')} steps, share of step time: {_shares(tt)}; top ops: "
                f"{top}. seqae's linear layers ran on {tt.get('cpu_gemm', '—')}. Square {gemm.get('n')}² fp32 GEMM "
                f"(GFLOP/s): {_kernels(gemm)} at the start of the run, {_kernels(end)} at the end (the fastest window "
                f"against the best of these: {_f(head_fastest(configs), 3)}); at the model's shapes (m×k×n) {shapes}.")
    if key == "ratio_vs_naive":
        naive = configs.get("naive/transformer-transformer", {})
        return (f"real tokens/s seqae {_f(tt.get('tokens_per_s_real'), 0)} vs naive "
                f"{_f(naive.get('tokens_per_s_real'), 0)}; padded positions/s seqae "
                f"{_f(tt.get('tokens_per_s_padded'), 0)} vs naive {_f(naive.get('tokens_per_s_padded'), 0)}; "
                f"padding efficiency {_f(tt.get('padding_efficiency_measured'))} vs "
                f"{_f(naive.get('padding_efficiency_measured'))}.")
    if key == "ratio_vs_tsdae":
        d, loop = configs.get("denoise/seqae-transformer", {}), configs.get("peer/tsdae-loop", {})
        return (f"seqae {_f(d.get('sentences_per_s'))} sentences/s, {_tokens_per_sentence(d)} target tokens per "
                f"sentence, padding efficiency {_f(d.get('padding_efficiency_measured'))}, "
                f"{_f(d.get('params'), 0)} parameters; profile: {_shares(d)}. TSDAE loop "
                f"{_f(loop.get('sentences_per_s'))} sentences/s, {_tokens_per_sentence(loop)} tokens per sentence, "
                f"padding efficiency {_f(loop.get('padding_efficiency_measured'))}, {_f(loop.get('params'), 0)} "
                f"parameters (encoder and decoder tied); profile: {_shares(loop)}. Per padded target position "
                f"seqae runs {_f(d.get('tokens_per_s_padded'), 0)}/s and the TSDAE loop "
                f"{_f(loop.get('tokens_per_s_padded'), 0)}/s "
                f"({_f(_ratio(d.get('tokens_per_s_padded'), loop.get('tokens_per_s_padded')))}x).")
    if key == "padding_efficiency":
        return (f"one epoch of the {tt.get('corpus_sentences')}-sentence fortunes training file in "
                f"{tt.get('corpus_batches_per_epoch')} batches; the timed {tt.get('sentences')}-sentence slice "
                f"({tt.get('batches_per_epoch')} batches): {_f(tt.get('batcher_padding_efficiency'), 3)}; the "
                f"default config (4096 tokens, no sentence cap): "
                f"{_f(tt.get('corpus_padding_efficiency_default_config'), 3)}.")
    if key == "decode_cache_speedup_64":
        rows = configs.get("decode", {}).get("lengths", {})
        return "; ".join(f"L={k}: cached {_f(v['cached_s'], 3)} s, uncached {_f(v['uncached_s'], 3)} s"
                         for k, v in rows.items())
    if key == "features_x_realtime":
        f = configs.get("features", {})
        batched = f.get("proposal_batched") or {}
        return (f"{f.get('files')} files, {_f(f.get('audio_s'))} s of audio (about "
                f"{_f(f.get('audio_s', 0) / max(f.get('files') or 1, 1), 2)} s each): loading + features "
                f"{_f(f.get('load_and_features_s'), 4)} s, of which the features themselves "
                f"{_f(f.get('features_only_s'), 4)} s and seqae's load_audio {_f(f.get('load_audio_s'), 4)} s "
                f"(a bare soundfile.read of every file alone takes {_f(f.get('soundfile_read_s'), 4)} s, i.e. "
                f"{_f(f.get('audio_s', 0) / max(f.get('soundfile_read_s') or 1e-9, 1e-9), 0)}x real time). The same "
                f"audio as one waveform: features at {_f(f.get('x_realtime_features_one_long_waveform'), 0)}x real "
                f"time. Second epoch feature time {_f(head.get('features_second_epoch_feature_s'), 3)} s. seqae computes "
                f"the features of 32 files in one call; one file per call (as before) runs at "
                f"{_f(f.get('x_realtime_file_by_file'), 0)}x real time. All files in one padded batch: "
                f"{_f(batched.get('seconds'), 4)} s (max difference to per-file features "
                f"{_f(batched.get('max_abs_diff_vs_per_file'), 6)}), load + batched features "
                f"{_f(batched.get('x_realtime_load_and_batched_features'), 0)}x real time.")
    return ""


def _tokens_per_sentence(r: dict[str, Any]) -> str:
    if not r.get("tokens_per_s_real") or not r.get("sentences_per_s"):
        return "—"
    return _f(r["tokens_per_s_real"] / r["sentences_per_s"], 1)


def _shares(r: dict[str, Any]) -> str:
    prof = r.get("profile") or {}
    parts = [f"{k} {_f(100 * v, 0)}%" for k, v in (prof.get("share") or {}).items()]
    return ", ".join(parts) + f"; GEMMs at {_f(prof.get('gemm_gflops_achieved'), 0)} GFLOP/s" if parts else "—"


def _load_note(env: dict[str, Any]) -> list[str]:
    """A warning when other work shared the cores: absolute figures are then low, ratios within the run hold.
    Only the load before the run tells of other processes: the one after counts the suite's own threads."""
    busy = env["load_before"][0]
    if busy < 0.5:
        return []
    return [f"- the machine was not idle before the run (1-minute load average {busy:.2f} on "
            f"{env.get('logical_cpus')} logical CPUs, from other processes): absolute figures may be below an idle "
            "machine's; the ratios compare configurations measured under the same conditions in this run"]


def render(results: dict[str, Any]) -> str:
    """RESULTS.md: machine and load, the goals, then every figure of every configuration."""
    configs, head, env = results["configs"], results, results["environment"]
    lines = [f"# seqae benchmark results ({'quick' if results['quick'] else 'full'} run)", "",
             f"- date: {results['date']}; machine: {results['machine']['cpu']}, {results['machine']['logical_cpus']} "
             f"logical CPUs; torch {results['torch_version']}; sentence-transformers: {env['peer_version'] or 'peer not installed'}",
             f"- threads: {env['threads']}; isolation: {env['isolation']}; load average (1/5/15 min) before "
             f"{env['load_before']}, after {env['load_after']}; wall time {_f(env['wall_s'], 0)} s",
             f"- command: `{env['command']}`", *_load_note(env), "", "## Goals", "",
             "| goal | target | measured | met | measured / target |", "|---|---|---|---|---|"]
    for key, g in results["goals"].items():
        lines.append(f"| {g['goal']} (`{key}`) | {_f(g['target'])} | {_f(g['value'], 3)} | {_f(g['met'])} | "
                     f"{_f(g['fraction_of_target'], 2)} |")
    lines += ["", "What was measured behind each goal (for a goal not met: the reason, measured):", ""]
    for key, g in results["goals"].items():
        if g["value"] is not None:
            lines.append(f"- `{key}` ({'met' if g['met'] else 'not met'}): {_why(key, configs, head)}")
    lines += _proposals(configs.get("proposals"))
    lines += _malloc(configs.get("malloc"))
    lines += ["", "## Every figure", "", "| configuration | figure | value |", "|---|---|---|"]
    for name, result in configs.items():
        for key, value in _flatten(result):
            lines.append(f"| {name} | {key} | {_f(value, 4) if isinstance(value, float) else _f(value)} |")
    return "\n".join(lines) + "\n"


def _gemm_pair(proposals: dict[str, Any]) -> str:
    """"here X against the baseline's Y" from the candidates' recorded GEMMs."""
    base, other = (proposals.get(k, {}).get("cpu_gemm", "—") for k in ("baseline", "other_gemm"))
    return f"here {other} against the baseline's {base}"


def _proposals(proposals: dict[str, Any] | None) -> list[str]:
    """The optimisation candidates measured on the Transformer AE (see bench_proposals)."""
    if not proposals or "error" in proposals:
        return []
    lines = ["", "## Optimisation candidates (Transformer AE on seqae's Trainer; `foreach_adamw` is the optimizer seqae "
             "used before fused AdamW became its default, so a speedup below 1 is what fused gained; `other_gemm` runs "
             "the linear layers on the fp32 GEMM that the baseline's `train.cpu_gemm: auto` did not pick, "
             f"{_gemm_pair(proposals)}, so a speedup below 1 is what auto's choice gained)", "",
             "| variant | sentences/s | speedup | batch building share | optimizer share | max relative loss "
             "difference vs fp32 baseline |", "|---|---|---|---|---|---|"]
    for name, r in proposals.items():
        if not isinstance(r, dict):
            continue
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | |")
            continue
        rel = r.get("max_rel_loss_diff")
        steps = r.get("curve_steps_compared")
        diff = (f"{rel:.2e} over {steps} steps" if rel is not None else "—") if r.get("curve_comparable") \
            else "n/a (changes the model)"
        lines.append(f"| {name} | {_f(r['sentences_per_s'])} | {_f(r['speedup'])} | {_f(r['batch_share'], 3)} | "
                     f"{_f(r['optimizer_share'], 3)} | {diff if name != 'baseline' else '—'} |")
    return lines


def _malloc(malloc: dict[str, Any] | None) -> list[str]:
    """glibc's default malloc against `train.cpu_malloc: keep`, each in processes of its own (see bench_malloc)."""
    if not malloc or "error" in malloc:
        return []
    pairs = f"{malloc['pairs']} alternating pair{'s' if malloc['pairs'] != 1 else ''} of processes"
    lines = ["", f"## glibc's malloc (Transformer AE on seqae's Trainer, {pairs}, {malloc['steps_per_process']} timed "
             "steps each; medians over the processes)", "",
             "| `train.cpu_malloc` | timed seconds | page faults a step | system seconds a step | peak RSS (MiB) |",
             "|---|---|---|---|---|"]
    for mode in ("default", "keep"):
        lines.append(f"| {mode} | {_f(malloc[f'{mode}_seconds'])} | {_f(malloc[f'{mode}_faults_per_step'], 0)} | "
                     f"{_f(malloc[f'{mode}_system_s_per_step'], 4)} | {_f(malloc[f'{mode}_peak_rss_mib'], 0)} |")
    later = malloc.get("speedup_after_first_epoch")
    lines += ["", f"keep trains {_f(malloc['speedup'], 3)}x as fast as glibc's defaults (all default processes' timed "
              "seconds over all keep processes')" + (f", {_f(later, 3)}x after the first timed epoch, when the heap "
                                                      "has reached the step's peak" if later else "") + "."]
    return lines


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _flatten(v, f"{prefix}{k}.")]
    if isinstance(node, list) and node and isinstance(node[0], dict):
        return [item for i, v in enumerate(node) for item in _flatten(v, f"{prefix}{i}.")]
    if isinstance(node, list) and len(node) > 8:
        return [(prefix.rstrip("."), f"{len(node)} values, first {_f(node[0], 4)}, last {_f(node[-1], 4)}")]
    return [(prefix.rstrip("."), node)]
