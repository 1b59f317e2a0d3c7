"""Representation diagnostics (definitions: docs/concepts.md, "Diagnostics"): functions on plain tensors, usable
outside training, and the Lightning callback that runs them per layer during training."""

from .geometry import alignment, invariance_score, lidar, residual_ratio, token_cosine, uniformity
from .probes import (
    coherence,
    factor_decodability,
    knn_accuracy,
    linear_probe,
    linear_regression_r2,
    region_context,
    train_test_split_indices,
)
from .similarity import cka_matrix, linear_cka, minibatch_cka
from .spectral import (
    alpha_req,
    covariance_spectrum,
    effective_rank,
    participation_ratio,
    rankme,
    sigreg_statistic,
    singular_values,
    std_of_normalized,
)

__all__ = [
    "alignment", "alpha_req", "cka_matrix", "coherence", "covariance_spectrum", "effective_rank",
    "factor_decodability", "invariance_score", "knn_accuracy", "lidar", "linear_cka", "linear_probe",
    "linear_regression_r2", "minibatch_cka", "participation_ratio", "rankme", "region_context", "residual_ratio",
    "sigreg_statistic", "singular_values", "std_of_normalized", "token_cosine", "train_test_split_indices",
    "uniformity",
]
