"""RankMe against its defining cases: isotropic Gaussian ~ D, rank-k data <= k, a constant ~ 1."""

from __future__ import annotations

import math

import torch

from workbench.diagnostics import rankme


def test_rankme_isotropic_gaussian_is_close_to_dimension():
    z = torch.randn(20000, 64, generator=torch.Generator().manual_seed(0))
    value = rankme(z)
    assert value.dtype == torch.float32 and value.ndim == 0
    assert abs(float(value) - 64) < 0.02 * 64


def test_rankme_low_rank_data():
    g = torch.Generator().manual_seed(1)
    for k in (1, 3, 10):
        z = torch.randn(2000, k, generator=g) @ torch.randn(k, 64, generator=g)
        assert float(rankme(z)) <= k + 0.5, k


def test_rankme_constant_matrix_is_one():
    assert abs(float(rankme(torch.full((500, 32), 3.0))) - 1.0) < 0.01


def test_rankme_hand_computed_diagonal():
    # singular values (3, 1): p = (3/4, 1/4) (+ eps), RankMe = exp(H(p))
    z = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert abs(float(rankme(z)) - math.exp(h)) < 1e-5


def test_rankme_is_uncentred_and_scale_invariant():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1000, 16, generator=g)
    assert abs(float(rankme(5 * z)) - float(rankme(z))) < 1e-3
    # a large common offset dominates the uncentred spectrum: RankMe drops towards 1
    assert float(rankme(z + 100.0)) < 2.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rankme(z).dtype == torch.float32
