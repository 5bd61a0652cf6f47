"""Training: losses, loops, checkpoints."""
