"""Classic one-class detectors as heads: RBF OC-SVM, Isolation Forest, k-nearest-neighbour distance.

Each keeps the head contract (higher score = more normal, ``offset_`` the threshold at which a
share ``nu`` of the training data is flagged), so they plug into the detector and the benchmark
exactly like the OC-NN. They are fitted in memory only; ``get_config`` marks them unsaveable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM

from ..errors import OneClassError
from .base import Head, check_latents


class _InMemoryHead(Head):
    def state_tensors(self):
        raise OneClassError(f"head {self.name!r} cannot be saved; use an OC-NN head for saved models")


class OCSVMHead(_InMemoryHead):
    """scikit-learn's OneClassSVM, RBF kernel, ``gamma='scale'`` (1 / (d * Var(Z)))."""

    name = "ocsvm"

    def __init__(self, nu: float = 0.1, gamma: str | float = "scale"):
        self.nu, self.gamma = nu, gamma

    def get_params(self) -> dict[str, Any]:
        return {"nu": self.nu, "gamma": self.gamma}

    def fit(self, Z: np.ndarray) -> OCSVMHead:
        Z = check_latents(Z)
        self.model_ = OneClassSVM(kernel="rbf", nu=self.nu, gamma=self.gamma).fit(Z)
        self.n_features_in_ = Z.shape[1]
        self.offset_ = 0.0  # OneClassSVM's decision_function already subtracts its own offset
        self.history_ = []
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(check_latents(Z, dim=self.n_features_in_)).astype(np.float64)


class IsolationForestHead(_InMemoryHead):
    """scikit-learn's IsolationForest; the threshold flags a share ``nu`` of the training data."""

    name = "iforest"

    def __init__(self, nu: float = 0.1, n_estimators: int = 200, seed: int = 0):
        self.nu, self.n_estimators, self.seed = nu, n_estimators, seed

    def get_params(self) -> dict[str, Any]:
        return {"nu": self.nu, "n_estimators": self.n_estimators, "seed": self.seed}

    def fit(self, Z: np.ndarray) -> IsolationForestHead:
        Z = check_latents(Z)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1).fit(Z)
        self.n_features_in_ = Z.shape[1]
        self.offset_ = float(np.quantile(self.model_.score_samples(Z), self.nu))
        self.history_ = []
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        return self.model_.score_samples(check_latents(Z, dim=self.n_features_in_)).astype(np.float64)


class KNNHead(_InMemoryHead):
    """Minus the mean distance to the k nearest training points (leave-one-out on training data)."""

    name = "knn"

    def __init__(self, nu: float = 0.1, k: int = 5):
        self.nu, self.k = nu, k

    def get_params(self) -> dict[str, Any]:
        return {"nu": self.nu, "k": self.k}

    def fit(self, Z: np.ndarray) -> KNNHead:
        Z = check_latents(Z)
        if len(Z) <= self.k:
            raise OneClassError(f"knn head needs more than k={self.k} training points, got {len(Z)}")
        self.model_ = NearestNeighbors(n_neighbors=self.k + 1).fit(Z)
        self.n_features_in_ = Z.shape[1]
        distances, _ = self.model_.kneighbors(Z)  # first neighbour of a training point is itself
        self.train_scores_ = -distances[:, 1:].mean(1).astype(np.float64)  # leave-one-out
        self.offset_ = float(np.quantile(self.train_scores_, self.nu))
        self.history_ = []
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        distances, _ = self.model_.kneighbors(check_latents(Z, dim=self.n_features_in_), self.k)
        return -distances.mean(1).astype(np.float64)
