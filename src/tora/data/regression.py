"""Ridge regression on quadratic features: a value or reward model fitted in one solve.

Used where a rough, cheap model of a quantity from states is enough and training a network
would be out of proportion: the start-state value behind advantage labels
(:mod:`tora.data.pairs`) and the reward of planned transitions in planner diagnostics
(:mod:`tora.evaluate.planning`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tora.errors import ShapeMismatchError


def quadratic_features(z: np.ndarray) -> np.ndarray:
    """(N, 1 + D + D(D+1)/2): a constant, ``z`` and every product z_i z_j with i <= j."""
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([np.ones((len(z), 1)), z, z[:, i] * z[:, j]], axis=1)


@dataclass(frozen=True)
class QuadraticRidge:
    """y ~ b + standardized(quadratic_features((x - mean) / std))[1:] @ coef, by :meth:`fit`."""

    mean: np.ndarray
    std: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    intercept: np.ndarray
    coef: np.ndarray
    r2: np.ndarray
    """(K,) coefficient of determination of each target on the fitted samples."""

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float = 1e-4) -> QuadraticRidge:
        """Fit every column of ``y`` (N, K) on ``x`` (N, D).

        Every feature is standardized before the fit, so ``ridge`` (times N, the diagonal of
        the normal equations of a standardized feature) shrinks each one alike, and the
        intercept is not shrunk: a product of two wide-ranging inputs cannot crowd out a
        narrow one that matters (as a relative ridge on raw features did)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ShapeMismatchError(f"need x (N, D) and y (N, K), got {x.shape} and {y.shape}")
        mean, std = x.mean(0), x.std(0)
        std[std < 1e-8] = 1.0
        phi = quadratic_features((x - mean) / std)[:, 1:]
        f_mean, f_std = phi.mean(0), phi.std(0)
        f_std[f_std < 1e-8] = 1.0
        phi = (phi - f_mean) / f_std
        y_mean = y.mean(0)
        gram = phi.T @ phi + ridge * len(phi) * np.eye(phi.shape[1])
        coef = np.linalg.solve(gram, phi.T @ (y - y_mean))
        resid = ((y - y_mean - phi @ coef) ** 2).sum(0)
        total = ((y - y_mean) ** 2).sum(0)
        r2 = 1.0 - resid / np.where(total > 0, total, 1.0)
        return cls(mean, std, f_mean, f_std, y_mean, coef, r2)

    def predict(self, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """(N, K) predictions, in chunks so that N rows of features never fill memory."""
        z = (np.asarray(x, np.float64) - self.mean) / self.std
        out = []
        for lo in range(0, len(z), chunk):
            phi = (
                quadratic_features(z[lo : lo + chunk])[:, 1:] - self.feature_mean
            ) / self.feature_std
            out.append(self.intercept + phi @ self.coef)
        return np.concatenate(out)
