"""The models: small modules with plain arguments, and one builder that turns a config into a model.

- `builder`: the only place a config becomes a model (`build_model`, `build_encoder_stack`).
- `autoencoder`: the token autoencoder; `frames`: the speech frame autoencoder and its front ends.
- `encoders`, `bottleneck`, `decoders`: the three roles (GRU/LSTM/Transformer; pooling to z with its
  regulariser; autoregressive decoders with a KV cache); `layers`: Transformer blocks.
- `fast/`: CPU speed code (GEMM choice, compiled dropout, malloc settings), beside the models so that their files
  read top to bottom without it.

Models import nothing but other models and `seqae.config` (tests/test_layout.py checks it).
"""
