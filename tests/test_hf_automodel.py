"""An export made loadable with transformers (`seqae.export.hf`): `AutoModel.from_pretrained(dir,
trust_remote_code=True)` gives load_encoder's states, lengths, layers and z for text and speech, seqae still reads the
directory, weights that do not fit are an error (never a partial load), and seqae itself does not import
transformers."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoConfig, AutoModel  # noqa: E402

from seqae import load_encoder  # noqa: E402
from seqae.export import ExportError, export_run  # noqa: E402
from seqae.export.hf import AUTO_MAP, MODELING_FILE, MODELING_SOURCE, add_transformers  # noqa: E402
from seqae.frontend.audio import load_audio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["Why?", "The cat sat.", "A penny saved is a penny earned.", "",
             "Some sentences are much longer than the others, long enough to be cut at the training length limit."]

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")  # see tests/conftest.py


@pytest.fixture(scope="module")
def exports(tiny_text_run, tiny_speech_run, tmp_path_factory) -> dict[str, Path]:
    """A text and a speech export with add_transformers applied (shared by this module's tests; do not modify)."""
    root = tmp_path_factory.mktemp("hf")
    paths = {"text": export_run(tiny_text_run, root / "text"), "speech": export_run(tiny_speech_run, root / "speech")}
    for path in paths.values():
        add_transformers(path)
    return paths


def load_hf(path: Path, **kwargs):
    return AutoModel.from_pretrained(path, trust_remote_code=True, **kwargs)


def assert_same(out, ref) -> None:
    """A SeqaeModelOutput against an EncoderResult, to 1e-5."""
    assert torch.equal(out.lengths, ref.lengths)
    torch.testing.assert_close(out.last_hidden_state, ref.states, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooler_output, ref.z, atol=1e-5, rtol=0)
    assert len(out.hidden_states) == len(ref.layers)
    for got, want in zip(out.hidden_states, ref.layers):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_add_transformers_only_adds_two_keys_and_a_file(tiny_text_run, tmp_path):
    path = export_run(tiny_text_run, tmp_path / "export")
    files, before = sorted(p.name for p in path.iterdir()), json.loads((path / "config.json").read_text())
    z = load_encoder(path)(SENTENCES).z

    assert add_transformers(path) == [MODELING_FILE, "config.json"]
    after = json.loads((path / "config.json").read_text())
    assert after == {**before, "auto_map": AUTO_MAP, "model_type": "seqae"}
    assert list(after)[:len(before)] == list(before)  # seqae's keys first, in their order
    assert sorted(p.name for p in path.iterdir()) == sorted([*files, MODELING_FILE])
    assert (path / MODELING_FILE).read_bytes() == MODELING_SOURCE.read_bytes()
    written = {name: (path / name).read_bytes() for name in (MODELING_FILE, "config.json")}
    add_transformers(path)  # again: the same directory
    assert {name: (path / name).read_bytes() for name in written} == written

    torch.testing.assert_close(load_encoder(path)(SENTENCES).z, z, atol=0, rtol=0)  # seqae still reads it
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    assert type(config).__name__ == "SeqaeConfig" and config.kind == "text"
    assert config.seqae_dict() == before


def test_add_transformers_refuses_a_foreign_model_type(tiny_text_run, tmp_path):
    path = export_run(tiny_text_run, tmp_path / "export")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ExportError, match=r"config\.json: model_type is 'bert'"):
        add_transformers(path)
    with pytest.raises(FileNotFoundError, match="no such export directory"):
        add_transformers(tmp_path / "missing")


def test_text_automodel_matches_load_encoder(exports):
    model, info = load_hf(exports["text"], output_loading_info=True)
    assert type(model).__name__ == "SeqaeModel" and not model.training
    assert not any(info.values()), info  # every weight from the file: nothing missing, unexpected or re-initialised
    enc = load_encoder(exports["text"])
    ref = enc(SENTENCES)
    ids, lengths = enc.prepare(SENTENCES)  # (B, T), (B,)
    assert len(set(lengths.tolist())) > 2  # a ragged batch

    with torch.no_grad():
        assert_same(model(input_ids=ids, lengths=lengths), ref)
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]  # (B, T) right-padded
        assert_same(model(input_ids=ids, attention_mask=mask.long()), ref)
        batch = model.prepare(SENTENCES)
        assert batch.keys() == {"input_ids", "lengths"} and torch.equal(batch["input_ids"], ids)
        assert_same(model(**batch), ref)
    model.train()
    assert model.encoder.training and not model.bottleneck.training  # z stays deterministic, as in seqae


def test_speech_automodel_matches_load_encoder(exports):
    model = load_hf(exports["speech"])
    enc = load_encoder(exports["speech"])
    rows = [json.loads(line) for line in (REPO / "data/espeak_words/test/manifest.jsonl").read_text().splitlines()]
    rows = sorted(rows, key=lambda row: row["duration"])
    paths = [str(REPO / "data/espeak_words/test" / row["path"]) for row in (rows[0], rows[-1], rows[len(rows) // 2])]
    ref = enc(paths)
    assert len(set(ref.lengths.tolist())) > 1  # a ragged batch

    with torch.no_grad():
        batch = model.prepare(paths)
        assert batch.keys() == {"input_features", "lengths"}
        assert_same(model(**batch), ref)
        feats, lengths = batch["input_features"], batch["lengths"]  # (B, T, F), (B,)
        mask = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
        assert_same(model(input_features=feats, attention_mask=mask), ref)

        rate = enc.feature_extractor.sample_rate
        waves = [load_audio(p, sample_rate=rate) for p in paths]
        padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)  # (B, S)
        samples = torch.tensor([len(w) for w in waves])
        assert_same(model(input_values=padded, lengths=samples, sample_rate=rate), enc(waves, sample_rate=rate))


def test_bad_forward_arguments_are_named(exports):
    model = load_hf(exports["text"])
    ids, lengths = model.prepare(SENTENCES[:2]).values()
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        model(input_features=torch.zeros(2, 5, 24), lengths=lengths)
    with pytest.raises(ValueError, match="not both"):
        model(input_ids=ids, lengths=lengths, attention_mask=torch.ones_like(ids))
    left_padded = torch.ones_like(ids)
    left_padded[1, 0] = 0
    with pytest.raises(ValueError, match="right-padded"):
        model(input_ids=ids, attention_mask=left_padded)


def _rewrite_weights(src: Path, dst: Path, edit: str) -> None:
    shutil.copytree(src, dst)
    state = load_file(dst / "model.safetensors")
    key = sorted(state)[0]
    if edit == "missing":
        del state[key]
    elif edit == "unexpected":
        state["encoder.extra.weight"] = torch.zeros(3)
    else:
        state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    save_file(state, dst / "model.safetensors")


@pytest.mark.parametrize("edit, kwargs, error, match", [
    ("missing", {}, ExportError, r"model\.safetensors: weights do not fit config\.json \(\{'missing_keys'"),
    ("unexpected", {}, ExportError, r"'unexpected_keys': \['encoder\.extra\.weight'\]"),
    ("shape", {}, RuntimeError, "ignore_mismatched_sizes"),  # transformers' own error
    ("shape", {"ignore_mismatched_sizes": True}, ExportError, "'mismatched_keys'"),  # re-initialised: still refused
])
def test_weights_that_do_not_fit_are_an_error(exports, tmp_path, edit, kwargs, error, match):
    bad = tmp_path / f"bad_{edit}"
    _rewrite_weights(exports["text"], bad, edit)
    with pytest.raises(error, match=match):
        load_hf(bad, **kwargs)
    with pytest.raises(ExportError, match="weights do not fit"):
        load_encoder(bad)  # seqae refuses the same file


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (function bodies, which import on first call, left out)."""
    found, todo = set(), list(ast.parse(path.read_text(encoding="utf-8")).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def test_seqae_does_not_import_transformers():
    """Only the copied model file imports transformers, and no seqae module imports it (a static check: a
    subprocess that imports seqae takes seconds on the shared test machine)."""
    def bad(module: str) -> bool:
        return module.split(".")[0] == "transformers" or module == "seqae.export.hf_modeling"

    offenders = {}
    for path in sorted((REPO / "seqae").rglob("*.py")):
        if path != MODELING_SOURCE and (found := sorted(filter(bad, _module_level_imports(path)))):
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}
    assert "transformers" in _module_level_imports(MODELING_SOURCE)  # the check sees such imports
