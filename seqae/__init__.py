"""seqae: sequence autoencoders for speech and text.

Pretrain a sequence encoder without labels (its sequence is squeezed into one bottleneck vector z and rebuilt by an
autoregressive decoder), then use z or the encoder's states downstream.
"""

from seqae.config import Config, ConfigError, load_config, load_config_dict
from seqae.export import load_encoder
from seqae.models.builder import build_token_autoencoder
from seqae.runs import Run, load_run
from seqae.frontend.tokenizer import Tokenizer, train_tokenizer
from seqae.train import pretrain

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "Run", "Tokenizer", "build_token_autoencoder", "load_config",
           "load_config_dict", "load_encoder", "load_run", "pretrain", "train_tokenizer", "__version__"]
