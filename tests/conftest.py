"""Shared test set-up: Hugging Face libraries offline with a private cache, before anything imports them."""

import os
import tempfile

# datasets and huggingface_hub read these when imported, so they are set here, at collection time.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="seqae-test-hf-"))
os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def speech_feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the speech fixture's runs in a test session: features are computed once."""
    return tmp_path_factory.mktemp("speech-features")
