"""The version of tora-rl, in a module of its own so that any module can read it without
importing the package's public API (and everything that pulls in)."""

__version__ = "0.1.0"
