"""Classic one-class detectors as heads: RBF OC-SVM, Isolation Forest, k-nearest-neighbour distance.

Each keeps the head contract (higher score = more normal, ``threshold_`` the threshold at which a
share ``nu`` of the training data is flagged), so they plug into the detector and the benchmark
exactly like the OC-NN. They are fitted in memory only: they cannot be saved.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM

from ..calibration import NU, nu_quantile
from ..errors import OneClassError
from ..params import Interval, Param
from .base import Head, check_latents

NU_PARAM = Param(NU, "Share of training data allowed on the abnormal side, in (0, 1].")


class _InMemoryHead(Head):
    def state_tensors(self):
        raise OneClassError(f"head {self.name!r} cannot be saved; use an OC-NN head for saved models")

    def _fitted(self, Z: np.ndarray, train_scores: np.ndarray) -> None:
        self.n_features_in_ = Z.shape[1]
        self.threshold_ = nu_quantile(train_scores, self.nu)
        self.history_ = []


class OCSVMHead(_InMemoryHead):
    """scikit-learn's OneClassSVM, RBF kernel, ``gamma='scale'`` (1 / (d * Var(Z))); its own
    offset is already subtracted in its decision function, so the threshold is 0."""

    name = "ocsvm"
    parameters: ClassVar[dict[str, Param]] = {"nu": NU_PARAM}

    def __init__(self, nu: float = 0.1):
        self.nu = nu
        self.validate_params()

    def fit(self, Z: np.ndarray) -> OCSVMHead:
        Z = check_latents(Z)
        self.model_ = OneClassSVM(kernel="rbf", nu=self.nu, gamma="scale").fit(Z)
        self.n_features_in_ = Z.shape[1]
        self.threshold_ = 0.0
        self.history_ = []
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(check_latents(Z, dim=self.n_features_in_)).astype(np.float64)


class IsolationForestHead(_InMemoryHead):
    """scikit-learn's IsolationForest; the threshold flags a share ``nu`` of the training data."""

    name = "iforest"
    parameters: ClassVar[dict[str, Param]] = {
        "nu": NU_PARAM,
        "n_estimators": Param(Interval(int, 1), "Trees."),
        "seed": Param(Interval(int, 0), "Seed."),
    }

    def __init__(self, nu: float = 0.1, n_estimators: int = 200, seed: int = 0):
        self.nu, self.n_estimators, self.seed = nu, n_estimators, seed
        self.validate_params()

    def fit(self, Z: np.ndarray) -> IsolationForestHead:
        Z = check_latents(Z)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1).fit(Z)
        self._fitted(Z, self.model_.score_samples(Z))
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        return self.model_.score_samples(check_latents(Z, dim=self.n_features_in_)).astype(np.float64)


class KNNHead(_InMemoryHead):
    """Minus the mean distance to the k nearest training points (leave-one-out on training data)."""

    name = "knn"
    parameters: ClassVar[dict[str, Param]] = {
        "nu": NU_PARAM,
        "k": Param(Interval(int, 1), "Neighbours."),
    }

    def __init__(self, nu: float = 0.1, k: int = 5):
        self.nu, self.k = nu, k
        self.validate_params()

    def fit(self, Z: np.ndarray) -> KNNHead:
        Z = check_latents(Z)
        if len(Z) <= self.k:
            raise OneClassError(f"knn head needs more than k={self.k} training points, got {len(Z)}")
        self.model_ = NearestNeighbors(n_neighbors=self.k + 1).fit(Z)
        distances, _ = self.model_.kneighbors(Z)  # first neighbour of a training point is itself
        self.train_scores_ = -distances[:, 1:].mean(1).astype(np.float64)  # leave-one-out
        self._fitted(Z, self.train_scores_)
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        distances, _ = self.model_.kneighbors(check_latents(Z, dim=self.n_features_in_), self.k)
        return -distances.mean(1).astype(np.float64)
