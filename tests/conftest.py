"""Shared test set-up: Hugging Face libraries offline with a private cache, before anything imports them; the
fixtures and helpers several test files use (plain helpers are imported as `from conftest import ...`)."""

import os
import tempfile

# datasets and huggingface_hub read these when imported, so they are set here, at collection time.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="seqae-test-hf-"))
os.environ.setdefault("TQDM_DISABLE", "1")

import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

needs_espeak = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                  reason="needs espeak-ng and sox")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def one_thread():
    """One intra-op thread during the test: the test machine's cores are shared, and one thread is faster than two
    fighting ones (a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def offline_hub(monkeypatch, tmp_path_factory):
    """Local files only, with a private Hugging Face cache, for the test and the processes it starts (this file sets
    the same at collection time, before `datasets` reads them)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))


def run_recipe(name: str, *args: str) -> subprocess.CompletedProcess:
    """`recipes/NAME/run.sh --debug ARGS` from the repository root, offline, the way a user runs it; must succeed."""
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(REPO / "recipes" / name / "run.sh"), "--debug", *args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def speech_feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the shipped espeak-ng fixture in a test session: features are computed once (the cache
    is keyed by the feature settings, so configs with other settings can share it)."""
    return tmp_path_factory.mktemp("speech-features")


def tiny_text_config(repo: Path, **model) -> dict:
    """A text run on the shipped fortunes that trains in seconds (vocab 120, widths 16, 3 steps)."""
    return {
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": None, "heldout_fraction": 0.1,
                 "max_train_sentences": 64, "max_len": 16, "max_tokens": 256, "eval_sentences": 8},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8, "num_heads": 2,
                  "ff_dim": 24, "max_positions": 32, "dropout": 0.1, **model},
        "train": {"max_steps": 3, "warmup_steps": 1, "log_every": 1, "eval_every": 0, "checkpoint_every": 3,
                  "progress": False, "threads": 1},
    }


def tiny_speech_config(repo: Path, cache: Path, **model) -> dict:
    """A speech run on the shipped espeak-ng words (48 train, 8 held out) that trains in seconds."""
    return {
        "task": "speech",
        "data": {"train": str(repo / "data/espeak_words/train/manifest.jsonl"),
                 "heldout": str(repo / "data/espeak_words/test/manifest.jsonl"), "max_len": 200, "max_tokens": 2000},
        "features": {"n_mels": 24, "cache_dir": str(cache)},
        "model": {"encoder": "gru", "decoder": "gru", "frontend": "conv2", "embed_dim": 16, "hidden_dim": 16,
                  "decoder_dim": 16, "prenet_dim": 16, "bottleneck_dim": 8, "num_heads": 2, "ff_dim": 24,
                  "pooling": "mean", "dropout": 0.0, **model},
        "train": {"max_steps": 3, "warmup_steps": 1, "log_every": 1, "eval_every": 0, "checkpoint_every": 3,
                  "progress": False, "threads": 1},
    }


@pytest.fixture(scope="session")
def tiny_text_run(tmp_path_factory) -> Path:
    """A trained tiny text run directory, shared by the session's tests (do not modify it)."""
    from seqae.config import load_config_dict
    from seqae.train import pretrain

    run = tmp_path_factory.mktemp("tiny-text") / "run"
    pretrain(load_config_dict(tiny_text_config(REPO)), run)
    return run


@pytest.fixture(scope="session")
def tiny_speech_run(tmp_path_factory) -> Path:
    """A trained tiny speech run directory, shared by the session's tests (do not modify it)."""
    from seqae.config import load_config_dict
    from seqae.train import pretrain

    root = tmp_path_factory.mktemp("tiny-speech")
    pretrain(load_config_dict(tiny_speech_config(REPO, root / "features")), root / "run")
    return root / "run"
