"""Tasks: what is autoencoded (text tokens, speech frames), behind one interface the training loop uses."""
