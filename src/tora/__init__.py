"""tora-rl: offline multi-objective RL whose trade-off is chosen at inference time."""

__version__ = "0.1.0"
