"""Diffusion machinery with no trainable parameters: noise schedule, samplers, composition."""

from tora.diffusion.compose import ComposedDenoiser, check_weights
from tora.diffusion.samplers import SamplerConfig, sample
from tora.diffusion.schedule import NoiseSchedule

__all__ = ["ComposedDenoiser", "NoiseSchedule", "SamplerConfig", "check_weights", "sample"]
