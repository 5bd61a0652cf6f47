"""Pure networks: denoisers over state windows and the inverse dynamics model.

Nothing here knows about optimizers, devices, datasets or environments.
"""

from tora.nn.denoisers import DenoiserConfig, MLPDenoiser, TransformerDenoiser, build_denoiser
from tora.nn.embeddings import SinusoidalEmbedding
from tora.nn.inverse_dynamics import InverseDynamics, InverseDynamicsConfig

__all__ = [
    "DenoiserConfig",
    "InverseDynamics",
    "InverseDynamicsConfig",
    "MLPDenoiser",
    "SinusoidalEmbedding",
    "TransformerDenoiser",
    "build_denoiser",
]
