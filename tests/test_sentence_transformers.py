"""A text export made loadable with sentence-transformers (`seqae.export.st`): `encode` gives load_encoder's z, a
library evaluator runs on it, a save round trip keeps it, a speech export is refused, and seqae itself does not
import sentence-transformers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("sentence_transformers")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator  # noqa: E402

from seqae import load_encoder  # noqa: E402
from seqae.export import ExportError, export_run  # noqa: E402
from seqae.export.st import CLASS_NAME, add_sentence_transformers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["Why?", "The cat sat.", "A penny saved is a penny earned.", "",
             "Some sentences are much longer than the others, long enough to be cut at the training length limit.",
             "There are bugs and then there are bugs."]

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")  # see tests/conftest.py


@pytest.fixture(scope="module")
def st_export(tiny_text_run, tmp_path_factory) -> Path:
    """A text export with the sentence-transformers files added (shared by this module's tests; do not modify)."""
    path = export_run(tiny_text_run, tmp_path_factory.mktemp("st") / "export")
    before = (path / "config.json").read_bytes()
    assert add_sentence_transformers(path) == ["modules.json", "config_sentence_transformers.json"]
    assert (path / "config.json").read_bytes() == before
    return path


def load_st(path: Path) -> SentenceTransformer:
    return SentenceTransformer(str(path), trust_remote_code=True, device="cpu")


def test_encode_matches_load_encoder(st_export):
    model = load_st(st_export)
    assert type(model[0]).__name__ == CLASS_NAME and len(model) == 1
    assert model.get_embedding_dimension() == load_encoder(st_export).bottleneck_dim
    assert model.similarity_fn_name == "cosine"
    # batch_size=2: three batches of sorted-by-length sentences, put back in order by encode
    got = model.encode(SENTENCES, batch_size=2, convert_to_tensor=True)  # (B, Z)
    want = load_encoder(st_export)(SENTENCES).z  # (B, Z), one padded batch
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_token_embeddings_are_the_states(st_export):
    model = load_st(st_export)
    got = model.encode(SENTENCES[:3], output_value="token_embeddings")  # list of (T_i, D)
    result = load_encoder(st_export)(SENTENCES[:3])
    for states, length, one in zip(result.states, result.lengths, got):
        torch.testing.assert_close(one, states[:length], atol=1e-5, rtol=0)


def test_information_retrieval_evaluator_runs(st_export):
    queries = (REPO / "data/fortunes/heldout.txt").read_text(encoding="utf-8").splitlines()[:8]
    corpus = [" ".join(w for i, w in enumerate(q.split()) if i != 1) for q in queries]  # second word dropped
    assert all(c != q for c, q in zip(corpus, queries))
    evaluator = InformationRetrievalEvaluator(
        queries={f"q{i}": q for i, q in enumerate(queries)}, corpus={f"d{i}": c for i, c in enumerate(corpus)},
        relevant_docs={f"q{i}": {f"d{i}"} for i in range(len(queries))}, name="fortunes", write_csv=False)
    scores = evaluator(load_st(st_export))
    score = scores[evaluator.primary_metric]
    assert math.isfinite(score) and 0.0 <= score <= 1.0, scores


def test_save_round_trip(st_export, tmp_path):
    model = load_st(st_export)
    model.save(str(tmp_path / "saved"))
    assert {"config.json", "model.safetensors", "tokenizer.model", "modules.json"} <= {
        p.name for p in (tmp_path / "saved").iterdir()}
    want = load_encoder(st_export)(SENTENCES).z
    torch.testing.assert_close(load_encoder(tmp_path / "saved")(SENTENCES).z, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(load_st(tmp_path / "saved").encode(SENTENCES, convert_to_tensor=True), want,
                               atol=1e-5, rtol=0)


def test_needs_trust_remote_code(st_export):
    """sentence-transformers >= 6 imports a module class outside its own namespace only when trusted, also from a
    local directory."""
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(st_export), device="cpu")


def test_speech_export_refused(tiny_speech_run, tmp_path):
    path = export_run(tiny_speech_run, tmp_path / "speech")
    with pytest.raises(ExportError, match=r"config\.json: a speech export"):
        add_sentence_transformers(path)
    assert not (path / "modules.json").exists()


def test_not_an_export_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        add_sentence_transformers(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ExportError, match="config.json: format 'something-else'"):
        add_sentence_transformers(tmp_path)


def test_seqae_does_not_import_sentence_transformers():
    """Only looking up the module class (as sentence-transformers does when loading) imports it."""
    code = "import sys, seqae, seqae.export.st\nassert 'sentence_transformers' not in sys.modules, 'imported'\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
