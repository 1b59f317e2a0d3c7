"""Representation diagnostics on plain tensors (definitions: docs/concepts.md, "Diagnostics").

Collapse (spectral), geometry (uniformity, alignment, invariance, tokens), probes (linear, kNN,
factor decodability, coherence) and similarity (CKA): functions of ``N x D`` tensors on any device,
usable outside training. The callback that runs them per layer during training lives in
:mod:`workbench.training.diagnostics_callback`. May import only the core (losses' SIGReg, data's
factor descriptions, errors)."""

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
