"""Offline text encoders: scene and choice texts as fixed-size vectors for the text policies.

The policies of :mod:`tora.text.cpl` read only text, through an encoder that must work
without a network (tora-rl's machines and many users' have none at run time). Two kinds:

- ``hashing`` (the default, no dependency): signed feature hashing (Weinberger et al., ICML
  2009) of lower-cased word unigrams and bigrams into ``dim`` buckets, counts scaled to unit
  length. Deterministic across processes and machines (BLAKE2b, not Python's salted
  ``hash``), so a trained policy reads texts the same way wherever it is loaded.
- ``wordllama``: the 256-dimensional static sentence embedding that the PyPI package
  ``wordllama`` (MIT) ships inside its wheel (16 MB of token embeddings, average-pooled), an
  optional extra: ``pip install wordllama``. Nothing is downloaded: the model is loaded from
  the installed package's own files.

Both cache the vectors of texts they have seen: a game has a few hundred distinct texts, and
the same scenes come back in every episode.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from tora.errors import ToraError

TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
"""Words: runs of letters and digits, with an apostrophe suffix kept (``don't``, ``ines's``)."""

_CACHE_LIMIT = 200_000  # texts; MACHIAVELLI's games have far more distinct texts than ours


@dataclass
class EncoderConfig:
    """Which text encoder the policy reads texts with (saved with every trained policy)."""

    kind: Literal["hashing", "wordllama"] = "hashing"
    """hashing: signed feature hashing of word n-grams (no dependency); wordllama: the small
    sentence-embedding model shipped inside the optional ``wordllama`` package."""
    dim: int = 2048
    """Buckets of the hashing encoder (wordllama's dimension is fixed at 256)."""
    ngrams: int = 2
    """Longest word n-gram the hashing encoder counts (1: words only; 2: words and pairs)."""


class TextEncoder(Protocol):
    """Turns texts into float32 vectors of a fixed size ``dim``."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, one row per text."""
        ...


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text`` (curly apostrophes read as straight ones)."""
    return TOKEN_PATTERN.findall(text.lower().replace("\u2019", "'"))


class _CachedEncoder:
    """Keeps the vectors of texts already encoded; subclasses encode the new ones."""

    dim: int

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            if len(self._cache) + len(new) > _CACHE_LIMIT:
                self._cache.clear()
            for text, row in zip(new, self._encode_new(new), strict=True):
                self._cache[text] = row
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._cache[text]
        return out

    def _encode_new(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class HashingEncoder(_CachedEncoder):
    """Signed feature hashing of word n-grams (1..``ngrams``) into ``dim`` buckets.

    Each n-gram's 64-bit BLAKE2b hash picks its bucket (low bits modulo ``dim``) and its sign
    (the top bit), so colliding n-grams cancel on average instead of piling up; the count
    vector is then scaled to unit length (an empty text is all zeros).
    """

    def __init__(self, dim: int = 2048, ngrams: int = 2) -> None:
        super().__init__()
        if dim < 1 or ngrams < 1:
            raise ToraError(
                f"the hashing encoder needs dim >= 1 and ngrams >= 1, got {dim}, {ngrams}"
            )
        self.dim = int(dim)
        self.ngrams = int(ngrams)
        self._buckets: dict[str, tuple[int, float]] = {}

    def _bucket(self, feature: str) -> tuple[int, float]:
        found = self._buckets.get(feature)
        if found is None:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            found = (value % self.dim, -1.0 if value >> 63 else 1.0)
            self._buckets[feature] = found
        return found

    def features(self, text: str) -> list[str]:
        """The n-grams counted for ``text`` (words joined by spaces)."""
        words = tokenize(text)
        return [
            " ".join(words[i : i + n])
            for n in range(1, self.ngrams + 1)
            for i in range(len(words) - n + 1)
        ]

    def _encode_new(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            for feature in self.features(text):
                index, sign = self._bucket(feature)
                out[row, index] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


WORDLLAMA_DIM = 256

_WORDLLAMA_MISSING = (
    "the wordllama text encoder needs the optional package 'wordllama' (MIT; its 256-dim "
    "model ships inside the wheel, so nothing is downloaded at run time): pip install "
    "wordllama. Or use the default encoder: --encoder-kind hashing"
)


class WordLlamaEncoder(_CachedEncoder):
    """The 256-dim WordLlama model shipped inside the ``wordllama`` wheel, unit-length rows."""

    def __init__(self) -> None:
        super().__init__()
        try:
            import wordllama
        except ImportError as exc:
            raise ToraError(_WORDLLAMA_MISSING) from exc
        # WordLlama.load looks for the bundled tokenizer under ``tokenizer/`` but the wheel
        # puts it under ``tokenizers/``; as a cache directory the package folder has both
        # ``weights/`` and ``tokenizers/``, so nothing is fetched.
        package_dir = Path(wordllama.__file__).parent
        try:
            self._model = wordllama.WordLlama.load(
                cache_dir=package_dir, dim=WORDLLAMA_DIM, disable_download=True
            )
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise ToraError(
                f"the installed wordllama package has no bundled model in {package_dir} "
                f"({exc}); reinstall it or use --encoder-kind hashing"
            ) from exc
        self.dim = WORDLLAMA_DIM

    def _encode_new(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.embed(texts, norm=True), dtype=np.float32)


def make_encoder(config: EncoderConfig | dict[str, Any] | None = None) -> TextEncoder:
    """The encoder ``config`` describes (a config or its dict; default: hashing)."""
    if config is None:
        config = EncoderConfig()
    elif isinstance(config, dict):
        config = EncoderConfig(**config)
    if config.kind == "hashing":
        return HashingEncoder(config.dim, config.ngrams)
    if config.kind == "wordllama":
        return WordLlamaEncoder()
    raise ToraError(f"unknown text encoder {config.kind!r}; choose hashing or wordllama")


def encoder_dict(config: EncoderConfig) -> dict[str, Any]:
    """``config`` as saved next to a policy (wordllama's fixed dimension filled in)."""
    data = asdict(config)
    if config.kind == "wordllama":
        data["dim"] = WORDLLAMA_DIM
    return data


__all__ = [
    "TOKEN_PATTERN",
    "WORDLLAMA_DIM",
    "EncoderConfig",
    "HashingEncoder",
    "TextEncoder",
    "WordLlamaEncoder",
    "encoder_dict",
    "make_encoder",
    "tokenize",
]
