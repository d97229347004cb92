"""Training the network from scratch (single process or torchrun)."""
