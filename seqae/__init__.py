"""seqae: sequence autoencoders for speech and text.

Pretrain a sequence encoder without labels (its sequence is squeezed into one bottleneck vector z and rebuilt by an
autoregressive decoder), then use z or the encoder's states downstream.
"""

from seqae.config import Config, ConfigError, load_config, load_config_dict
from seqae.export import export_run, load_decoder, load_encoder
from seqae.finetune.inference import RecogniserRun, TranslationRun, load_recogniser, load_translation
from seqae.frontend.tokenizer import Tokenizer, train_tokenizer
from seqae.models.builder import build_model, build_token_autoencoder
from seqae.runs import Run, SpeechRun, TextRun, load_run
from seqae.train import pretrain
from seqae.version import __version__

__all__ = ["Config", "ConfigError", "RecogniserRun", "Run", "SpeechRun", "TextRun", "Tokenizer", "TranslationRun",
           "build_model", "build_token_autoencoder", "export_run", "load_config", "load_config_dict", "load_decoder",
           "load_encoder", "load_recogniser", "load_run", "load_translation", "pretrain", "train_tokenizer",
           "__version__"]
