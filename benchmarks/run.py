"""The benchmark suite in one command: `python benchmarks/run.py [--quick] [--out DIR]`.

Each configuration runs in its own subprocess (so its peak RSS is its own) and writes its figures; this
process collects them into DIR/results.json and DIR/RESULTS.md. `--quick` runs tiny sizes in-process
(the smoke test); the real run uses 2 threads and the sizes of `bench_common.full()`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_common as common  # noqa: E402
import bench_report  # noqa: E402

PAIRS = ("gru-gru", "lstm-lstm", "transformer-transformer")
PEER = ("peer/tsdae-loop", "peer/tsdae-trainer")
CONFIGS = ("gemm", *(f"train/{p}" for p in PAIRS), *(f"naive/{p}" for p in PAIRS), "denoise/seqae-transformer",
           *PEER, "decode", "features", "proposals", "malloc", "gemm/end")


def run_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process and return its figures."""
    sizes, threads, work = common.sizes_from_dict(spec["sizes"]), spec["threads"], Path(spec["workdir"])
    kind, _, variant = name.partition("/")
    if kind == "gemm":  # measured first and again last: the MFU denominator is the better of the two
        import bench_train

        return bench_train.run_gemm(sizes, threads)
    if kind in ("train", "naive", "denoise", "proposals"):
        import bench_train

        encoder, _, decoder = (variant if kind in ("train", "naive") else "transformer-transformer").partition("-")
        noise = ({"type": "delete", "ratio": 0.6},) if kind == "denoise" else ()

        def make_config():
            return bench_train.seqae_config(sizes, encoder=encoder, decoder=decoder, noise=noise, threads=threads,
                                            train_file=Path(spec["train_file"]), tokenizer=Path(spec["tokenizer"]))

        run_dir = work / name.replace("/", "_")
        if kind == "naive":
            return bench_train.run_naive(make_config(), run_dir, sizes)
        if kind == "proposals":
            import bench_proposals

            return bench_proposals.run_proposals(make_config, run_dir, sizes)
        profile = variant in ("transformer-transformer", "seqae-transformer")
        return bench_train.run_seqae(make_config(), run_dir, sizes, profile=profile)
    if kind == "peer":
        import bench_peer

        _quiet_transformers()
        sentences = common.fortunes_lines(sizes.sentences)
        run = bench_peer.run_loop if variant == "tsdae-loop" else bench_peer.run_trainer
        return run(sizes, sentences, work / name.replace("/", "_"), threads)
    if kind == "malloc":  # its own processes: the setting is process-wide
        import bench_malloc

        return bench_malloc.run_malloc(work / "spec.json", work, sizes, pairs=sizes.malloc_pairs)
    if kind == "decode":
        import bench_decode

        return bench_decode.run_decode(sizes, threads)
    if kind == "features":
        import bench_features

        return bench_features.run_features(sizes, threads, work / "feature_cache")
    raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")


def _quiet_transformers() -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def run_isolated(name: str, spec_path: Path, work: Path, timeout: float) -> dict[str, Any]:
    """Run one configuration in a child process; its log goes to work/<name>.log."""
    result_path = work / f"{name.replace('/', '_')}.json"
    log_path = work / f"{name.replace('/', '_')}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--spec", str(spec_path),
           "--result", str(result_path)]
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}
    return json.loads(result_path.read_text())


def child_main(name: str, spec_path: Path, result_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    common.offline_env(Path(spec["hf_home"]))
    result = run_config(name, spec)
    result["peak_rss_mib"] = common.peak_rss_mib()
    result_path.write_text(json.dumps(result))
    return 0


def prepare(sizes: common.Sizes, work: Path) -> tuple[Path, Path]:
    """The training slice of fortunes and one SentencePiece model every seqae configuration shares: case-folded
    (`normalization: nmt_nfkc_cf`), as the peer's uncased WordPiece is, so both rebuild the same lowercased text."""
    from seqae.frontend.tokenizer import train_tokenizer

    lines = common.fortunes_lines(sizes.sentences)
    train_file = work / "train.txt"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_tokenizer(lines, work / "spm", vocab_size=sizes.vocab, normalization="nmt_nfkc_cf", seed=0)
    return train_file, work / "spm.model"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, in-process: a smoke test, not a measurement")
    p.add_argument("--out", type=Path, default=HERE, help="where results.json and RESULTS.md go (default: benchmarks/)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per configuration (default: 2, quick: 1)")
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these configurations: {', '.join(CONFIGS)}")
    p.add_argument("--no-peer", action="store_true", help="skip the sentence-transformers peer")
    p.add_argument("--isolation", choices=("subprocess", "in-process"), default=None,
                   help="one subprocess per configuration (default) or all in this process (default with --quick)")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per configuration (subprocess)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def selected(args: argparse.Namespace, peer_version: str | None) -> list[str]:
    names = list(args.only or CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    if args.no_peer or peer_version is None:
        names = [n for n in names if n not in PEER]
    return names


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the suite; returns the results also written to OUT/results.json and OUT/RESULTS.md."""
    args = parse_args(argv)
    if args.child:
        raise SystemExit(child_main(args.child, args.spec, args.result))
    import bench_peer

    sizes = common.quick() if args.quick else common.full()
    threads = args.threads or (1 if args.quick else 2)
    isolation = args.isolation or ("in-process" if args.quick else "subprocess")
    peer_version = bench_peer.peer_version()
    names = selected(args, peer_version)
    if peer_version is None:
        print("peer not installed: sentence-transformers (and transformers) are needed for the TSDAE comparison; "
              "install the bench extra")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before, start = common.load_average(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqae-bench-") as tmp:
        work = Path(tmp)
        common.offline_env(work / "hf_home")
        train_file, tokenizer = prepare(sizes, work)
        spec = {"sizes": common.sizes_to_dict(sizes), "threads": threads, "workdir": str(work),
                "train_file": str(train_file), "tokenizer": str(tokenizer), "hf_home": str(work / "hf_home")}
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        configs: dict[str, Any] = {}
        for name in names:
            t0 = time.perf_counter()
            if isolation == "subprocess":
                configs[name] = run_isolated(name, spec_path, work, args.timeout)
            else:
                configs[name] = _in_process(name, spec)
            status = configs[name].get("error", "ok")
            print(f"[{time.perf_counter() - start:6.0f} s] {name}: {time.perf_counter() - t0:.1f} s, {status}",
                  flush=True)
    results = assemble(configs, args, sizes, threads, isolation, peer_version, argv,
                       load_before=load_before, wall_s=time.perf_counter() - start)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(bench_report.render(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return results


def _in_process(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        result = run_config(name, spec)
    except Exception as err:  # one failing configuration must not lose the others' figures
        traceback.print_exc()
        return {"error": f"{type(err).__name__}: {err}"}
    result["peak_rss_mib"] = common.peak_rss_mib()  # of the whole process so far: configurations share it
    return result


def assemble(configs: dict[str, Any], args: argparse.Namespace, sizes: common.Sizes, threads: int, isolation: str,
             peer_version: str | None, argv: list[str] | None, *, load_before: list[float],
             wall_s: float) -> dict[str, Any]:
    machine = common.machine()
    head = bench_report.headline(configs)
    return {
        **head,
        "machine": machine,
        "torch_version": machine["torch_version"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "goals": bench_report.goals(head),
        "environment": {"threads": threads, "isolation": isolation, "peer_version": peer_version,
                        "logical_cpus": machine["logical_cpus"],
                        "peer": "peer not installed" if peer_version is None else
                        ("skipped (--no-peer)" if args.no_peer else "ran"),
                        "load_before": load_before, "load_after": common.load_average(), "wall_s": wall_s,
                        "command": " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
                        "sizes": common.sizes_to_dict(sizes)},
        "configs": configs,
    }


if __name__ == "__main__":
    main()
