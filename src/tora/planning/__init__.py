"""Receding-horizon planning: compose objective models, sample a plan, act by inverse dynamics."""

from tora.planning.agent import Agent

__all__ = ["Agent"]
