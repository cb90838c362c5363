"""The contract every one-class head keeps (scikit-learn's OneClassSVM, with one name for the
threshold):

- ``fit(Z) -> self`` on feature vectors ``Z`` of shape ``(n, d)``, normal data only;
- ``score_samples(Z) -> (n,)``: higher = more normal;
- ``threshold_``: scores below it are abnormal (``calibration.py``: a share nu of the training
  data lies below it), so ``decision_function(Z) = score_samples(Z) - threshold_`` is negative
  for abnormal inputs and ``predict`` gives +1 (normal) / -1 (abnormal);
- parameters declared once in ``parameters`` (``params.py``), ``get_params`` from them;
- ``get_config()`` (JSON-able) and ``state_tensors()`` (safetensors-able) save a fitted head;
  ``from_state(config, tensors)`` rebuilds it;
- ``torch_module()``: the scoring function as an ``nn.Module`` (features -> scores) for export,
  or None for heads that are not networks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import OneClassError
from ..params import Estimator


def check_latents(Z: np.ndarray, name: str = "Z", dim: int | None = None) -> np.ndarray:
    array = np.asarray(Z, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise OneClassError(f"{name} must have shape (n, d) with n >= 1, got {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise OneClassError(f"{name} has {array.shape[1]} features, the head was fitted on {dim}")
    if not np.isfinite(array).all():
        raise OneClassError(f"{name} contains NaN or infinite values")
    return array


class Head(Estimator):
    """Base class: subclasses implement ``fit`` and ``score_samples`` and set ``threshold_``."""

    name: ClassVar[str]
    saveable: ClassVar[bool] = False  # a network that model files can hold (and ONNX export)
    threshold_: float
    history_: list[dict]

    def fit(self, Z: np.ndarray) -> Head:
        raise NotImplementedError

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decision_function(self, Z: np.ndarray) -> np.ndarray:
        return self.score_samples(Z) - self.threshold_

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return np.where(self.decision_function(Z) >= 0, 1, -1)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.model_params(), "threshold": float(self.threshold_)}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def torch_module(self) -> torch.nn.Module | None:
        return None

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Head:
        raise NotImplementedError
