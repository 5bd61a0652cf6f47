"""Offline data: the trajectory container, file formats, windows, normalization, pairs."""

from tora.data.trajectories import Direction, Objective, Trajectories, objectives_from_names

__all__ = ["Direction", "Objective", "Trajectories", "objectives_from_names"]
