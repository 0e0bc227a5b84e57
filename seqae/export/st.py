"""A text export as a sentence-transformers model: `add_sentence_transformers(dir)` writes the two files
sentence-transformers reads next to the export's own, and `SeqaeSentenceEncoder` is the module class they name.

    add_sentence_transformers(export_dir)
    SentenceTransformer(str(export_dir), trust_remote_code=True).encode(sentences)  # [B, Z], the z of load_encoder

Dimension letters: B batch, T tokens (bos ... eos), D encoder width, Z bottleneck width.

`trust_remote_code=True` is needed although nothing is downloaded: sentence-transformers >= 6.0 refuses any module
class outside its own namespace without it, local directories included. config.json, model.safetensors and
tokenizer.model are left as they are, so `load_encoder(dir)` keeps working on the same directory.

This module imports sentence-transformers only when `SeqaeSentenceEncoder` is first looked up (a module
`__getattr__`, which is also how sentence-transformers resolves the name in modules.json), so
`add_sentence_transformers` and `import seqae` work without it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from seqae.export.encoder import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ExportError,
    check_format,
    load_encoder,
    read_json,
)
from seqae.version import __version__

CLASS_NAME = "SeqaeSentenceEncoder"
CLASS_REF = f"{__name__}.{CLASS_NAME}"
"""The importable path modules.json names."""
MODULES_FILE, ST_CONFIG_FILE = "modules.json", "config_sentence_transformers.json"
MIN_ST_VERSION = "6.0"
"""sentence-transformers' `base.modules` layout and `preprocess` interface, which the module class uses."""


def add_sentence_transformers(export_dir: str | Path) -> list[str]:
    """Make a text export loadable with `SentenceTransformer(dir, trust_remote_code=True)`; returns the names of the
    files written (modules.json, config_sentence_transformers.json; rewritten if present). The export's own files
    are not touched. FileNotFoundError naming a missing directory or config.json; ExportError naming config.json
    for another format or a speech export."""
    root = Path(export_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such export directory")
    config = read_json(root / CONFIG_FILE)
    check_format(config, root / CONFIG_FILE)
    if config["kind"] != "text":
        raise ExportError(f"{root / CONFIG_FILE}: a {config['kind']} export; sentence-transformers takes text, so "
                          "only a text export can be made loadable with it")
    modules = [{"idx": 0, "name": "0", "path": "", "type": CLASS_REF}]
    st_config = {
        "model_type": "SentenceTransformer",
        "__version__": {"seqae": __version__},
        "prompts": {},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
        "requirements": {
            "seqae": {"specifier": f">={__version__}", "reason": f"{CLASS_REF} reads this {FORMAT} export "
                      f"(format version {FORMAT_VERSION})."},
            "sentence-transformers": {"specifier": f">={MIN_ST_VERSION}", "reason": f"{CLASS_REF} is a "
                                      "sentence-transformers 6 input module."},
        },
    }
    (root / MODULES_FILE).write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (root / ST_CONFIG_FILE).write_text(json.dumps(st_config, indent=2) + "\n", encoding="utf-8")
    return [MODULES_FILE, ST_CONFIG_FILE]


def __getattr__(name: str) -> Any:
    """`SeqaeSentenceEncoder`, defined (and sentence-transformers imported) on first use."""
    if name == CLASS_NAME:
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _module_class() -> type:
    from sentence_transformers.base.modules import InputModule
    from torch import Tensor

    from seqae.export.encoder import PretrainedEncoder
    from seqae.models.layers import lengths_to_mask

    class SeqaeSentenceEncoder(InputModule):
        """A seqae text encoder as a sentence-transformers input module: sentences -> features (`preprocess`) ->
        `sentence_embedding` z [B, Z] and `token_embeddings` [B, T, D] (`forward`). Build it with `load(dir)`."""

        __qualname__ = CLASS_NAME  # pickle and repr find it as seqae.export.st.SeqaeSentenceEncoder
        save_in_root = True

        def __init__(self, encoder: PretrainedEncoder) -> None:
            super().__init__()
            if encoder.kind != "text":
                raise ExportError(f"{CLASS_NAME}: a {encoder.kind} encoder; sentence-transformers takes text")
            self.encoder = encoder

        @classmethod
        def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
                 cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
                 **kwargs: Any) -> SeqaeSentenceEncoder:
            """The export in `model_name_or_path`/`subfolder` (a local directory, or a Hub repository fetched by
            sentence-transformers), read with `seqae.load_encoder`; other loader arguments are ignored."""
            path = cls.load_dir_path(model_name_or_path, subfolder=subfolder, token=token, cache_folder=cache_folder,
                                     revision=revision, local_files_only=local_files_only)
            if path is None:
                raise FileNotFoundError(f"{model_name_or_path}: no seqae export found (subfolder {subfolder!r})")
            return cls(load_encoder(path))

        @property
        def tokenizer(self):
            """The export's SentencePiece tokenizer (`seqae.Tokenizer`)."""
            return self.encoder.tokenizer

        @property
        def max_seq_length(self) -> int:
            """Tokens per sentence, bos and eos included; longer sentences are cut, as in training (read-only)."""
            return self.encoder.config["frontend"]["max_len"]

        def get_embedding_dimension(self) -> int:
            """Z, the width of `sentence_embedding`."""
            return self.encoder.bottleneck_dim

        def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs: Any) -> dict[str, Tensor]:
            """Sentences -> {input_ids [B, T], attention_mask [B, T], lengths [B]}, tokenized as
            `PretrainedEncoder.prepare` does; a prompt is put in front of every sentence."""
            if prompt:
                inputs = [prompt + text for text in inputs]
            ids, lengths = self.encoder.prepare(list(inputs))  # (B, T), (B,)
            return {"input_ids": ids, "attention_mask": lengths_to_mask(lengths, ids.shape[1]).long(),
                    "lengths": lengths}

        def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            """Adds sentence_embedding z [B, Z], token_embeddings [B, T, D] and their attention_mask [B, T]."""
            out = self.encoder.encode_inputs(features["input_ids"], features["lengths"])
            features.update(sentence_embedding=out.z, token_embeddings=out.states,
                            attention_mask=lengths_to_mask(out.lengths, out.states.shape[1]).long())
            return features

        def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
            """Write the export's config.json, model.safetensors and tokenizer.model to `output_path` (always
            safetensors); sentence-transformers writes its own files next to them."""
            from safetensors.torch import save_file

            root = Path(output_path)
            (root / CONFIG_FILE).write_text(json.dumps(self.encoder.config, indent=2) + "\n", encoding="utf-8")
            weights = {k: v.detach().contiguous().cpu() for k, v in self.encoder.state_dict().items()}
            save_file(weights, str(root / WEIGHTS_FILE), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
            (root / TOKENIZER_FILE).write_bytes(self.encoder.tokenizer.serialized())

        def __repr__(self) -> str:
            return (f"{CLASS_NAME}(encoder={self.encoder.config['encoder']['type']}, "
                    f"z={self.get_embedding_dimension()}, max_seq_length={self.max_seq_length})")

    return SeqaeSentenceEncoder
