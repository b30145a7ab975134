"""Per-feature standardization over the real steps of the training split.

Fitted once on training data (padding never enters the statistics: a :class:`Sequences`
holds no padding), saved in the run directory, applied to every split and every input.
Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seqmask.data.sequences import Sequences


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-feature standardisation ``(x - mean) / std``, fitted over the real steps.

    A constant (or empty-variance) feature gets ``std = 1`` so nothing is ever
    divided by 0.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean has {mean.size} features but std has {std.size}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("normalizer mean must be finite and std finite and > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def num_features(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, seqs: Sequences) -> Normalizer:
        """Mean and (population) std of every feature over all real steps.

        ``ValueError`` for tokens or token ids: they are never normalized.
        """
        _check_numbers(seqs, "fit a normalizer on")
        if seqs.num_steps == 0:
            raise ValueError("cannot fit a normalizer on no data")
        x = seqs.values.astype(np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        constant = (x.max(axis=0) == x.min(axis=0)) | ~np.isfinite(std) | ~(std > 0)
        std = np.where(constant, 1.0, std)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        return cls(mean, std)

    @classmethod
    def identity(cls, num_features: int) -> Normalizer:
        return cls(np.zeros(num_features), np.ones(num_features))

    def apply(self, seqs: Sequences) -> Sequences:
        _check_numbers(seqs, "normalize")
        if seqs.num_features != self.num_features:
            raise ValueError(f"normalizer has {self.num_features} features but the data has {seqs.num_features}")
        out = (seqs.values.astype(np.float64) - self.mean) / self.std
        return seqs.with_values(out.astype(np.float32))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`. Raises ``ValueError`` if ``d`` is malformed."""
        if not isinstance(d, dict) or "mean" not in d or "std" not in d:
            raise ValueError("a normalizer needs 'mean' and 'std' lists")
        try:
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"normalizer 'mean'/'std' must be lists of numbers ({e})") from None
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError("normalizer 'mean' and 'std' must be flat lists")
        return cls(mean, std)


def _check_numbers(seqs: Sequences, what: str) -> None:
    if seqs.values.dtype != np.float32:
        form = "tokens" if seqs.is_tokens else "token ids"
        raise ValueError(f"cannot {what} {form}: only numeric (float32) values are normalized")
