"""The network, its checkpoints and the I/O contract every deployed model honours."""
