"""``tora serve``: a TORA agent answering over HTTP, with concurrent requests micro-batched.

- :mod:`tora.serve.config`: the command's settings;
- :mod:`tora.serve.payload`: the ``/act`` body checked into the arrays ``Agent.act`` takes;
- :mod:`tora.serve.batcher`: requests collected into one call of the agent, in one thread;
- :mod:`tora.serve.service`: the served agent, its noise seeds and reloads;
- :mod:`tora.serve.app`: the HTTP routes (FastAPI, the ``serve`` extra; imported only by the
  command and its tests, so nothing else needs FastAPI installed).
"""

from tora.serve.config import TOKEN_ENV, ServeConfig

__all__ = ["TOKEN_ENV", "ServeConfig"]
