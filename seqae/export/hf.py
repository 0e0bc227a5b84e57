"""An export as a transformers model: `add_transformers(dir)` makes an export directory (text or speech) loadable with
`AutoModel.from_pretrained(dir, trust_remote_code=True)` and `AutoConfig.from_pretrained(dir, trust_remote_code=True)`.

    add_transformers(export_dir)
    model = AutoModel.from_pretrained(export_dir, trust_remote_code=True)
    out = model(**model.prepare(sentences))  # last_hidden_state, lengths, hidden_states, pooler_output (= z)

It copies `seqae/export/hf_modeling.py` (the `SeqaeConfig` and `SeqaeModel` classes, which import the installed
seqae) into the export as `modeling_seqae.py`, and adds `auto_map` and `model_type` to config.json; seqae's own keys
and files are left as they are, so `load_encoder(dir)` keeps working on the same directory. This module does not
import transformers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from seqae.export.encoder import (
    CONFIG_FILE,
    FEATURES_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ExportError,
    check_format,
    read_json,
)

MODELING_FILE = "modeling_seqae.py"
"""The module transformers imports from the export directory (a copy of `MODELING_SOURCE`)."""
MODELING_SOURCE = Path(__file__).with_name("hf_modeling.py")
MODEL_TYPE = "seqae"
AUTO_MAP = {"AutoConfig": "modeling_seqae.SeqaeConfig", "AutoModel": "modeling_seqae.SeqaeModel"}


def add_transformers(export_dir: str | Path) -> list[str]:
    """Make an export loadable with transformers' `AutoModel`/`AutoConfig` (`trust_remote_code=True`); returns the
    names of the files written (modeling_seqae.py) and changed (config.json: `auto_map` and `model_type` added, or
    rewritten if present). Running it again gives the same directory.

    FileNotFoundError naming a missing directory or file; ExportError naming config.json for another format, or
    for `auto_map`/`model_type` keys that another tool wrote.
    """
    root = Path(export_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such export directory")
    config = read_json(root / CONFIG_FILE)
    check_format(config, root / CONFIG_FILE)
    for name in (WEIGHTS_FILE, TOKENIZER_FILE if config["kind"] == "text" else FEATURES_FILE):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name}: missing (not a complete seqae encoder export)")
    for key, ours in (("model_type", MODEL_TYPE), ("auto_map", AUTO_MAP)):
        if config.get(key, ours) != ours:
            raise ExportError(f"{root / CONFIG_FILE}: {key} is {config[key]!r}, not seqae's {ours!r}; not replacing it")
    config.update(auto_map=AUTO_MAP, model_type=MODEL_TYPE)
    shutil.copyfile(MODELING_SOURCE, root / MODELING_FILE)
    tmp = root / f".{CONFIG_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / CONFIG_FILE)
    return [MODELING_FILE, CONFIG_FILE]
