"""Spectral diagnostics against analytic cases and independent numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.diagnostics import spectral
from workbench.diagnostics.spectral import (
    alpha_req,
    covariance_spectrum,
    effective_rank,
    participation_ratio,
    rankme,
    sigreg_statistic,
    singular_values,
    std_of_normalized,
)
from workbench.losses import SIGReg


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gaussian() -> torch.Tensor:
    return torch.randn(20000, 64, generator=_gen(0))


def _power_law_exact(n: int, d: int, alpha: float, seed: int) -> torch.Tensor:
    """N x D data whose centred covariance has eigenvalues exactly proportional to i^-alpha."""
    g = _gen(seed)
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    u = u - u.mean(dim=0)  # centred columns, then re-orthonormalise
    u, _ = torch.linalg.qr(u)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.arange(1, d + 1, dtype=torch.float64).pow(-alpha / 2)
    return (u * s) @ q.T + 3.0  # a constant offset must not matter (centred covariance)


def test_isotropic_gaussian_is_close_to_dimension(gaussian):
    d = gaussian.shape[1]
    assert abs(float(rankme(gaussian)) - d) < 0.02 * d
    # finite N spreads the eigenvalues (Marchenko-Pastur, D/N = 0.0032): slightly below D
    assert abs(float(participation_ratio(gaussian)) - d) < 0.03 * d
    assert abs(float(effective_rank(gaussian)) - d) < 0.03 * d


def test_rank_k_data():
    g = _gen(1)
    k, d = 5, 64
    z = torch.randn(4000, k, generator=g) @ torch.randn(k, d, generator=g)
    assert float(rankme(z)) <= k + 0.5
    assert float(participation_ratio(z)) <= k + 1e-3
    assert float(effective_rank(z)) <= k + 1e-3
    # one direction (plus an offset): exactly 1 for the centred-covariance measures
    line = torch.randn(1000, 1, generator=g) * torch.randn(1, d, generator=g) + 5.0
    assert abs(float(participation_ratio(line)) - 1.0) < 1e-4
    assert abs(float(effective_rank(line)) - 1.0) < 1e-3


def test_constant_gives_rankme_one_and_no_spread():
    # float64 rows: the column means are inexact, centring leaves ~1e-16 residues that must not count
    row = torch.randn(1, 32, generator=_gen(12), dtype=torch.float64)
    x = row.repeat(500, 1)
    assert (x - x.mean(dim=0)).abs().max() > 0
    assert float(participation_ratio(x)) == 0.0 and float(effective_rank(x)) == 0.0
    z = row.float().repeat(500, 1)
    assert abs(float(rankme(z)) - 1.0) < 0.01
    assert float(std_of_normalized(z)) < 1e-6
    assert float(covariance_spectrum(z).abs().max()) == 0.0
    assert float(covariance_spectrum(z, normalize=False).abs().max()) == 0.0
    assert float(singular_values(z, center=True).abs().max()) == 0.0
    # no variance: the centred-covariance ranks are 0 (the rank of the zero matrix), alpha undefined
    assert float(participation_ratio(z)) == 0.0 and float(effective_rank(z)) == 0.0
    out = alpha_req(z)
    assert math.isnan(float(out["alpha"])) and math.isnan(float(out["r2"]))
    # a single float32 step in one entry is real variation: one direction
    z[0, 0] = torch.nextafter(z[0, 0], torch.tensor(1.0))
    assert abs(float(participation_ratio(z)) - 1.0) < 1e-6


def test_participation_ratio_and_effective_rank_match_numpy():
    g = _gen(2)
    z = torch.randn(3000, 20, generator=g) * torch.linspace(0.1, 3.0, 20) + 7.0
    lam = np.linalg.eigvalsh(np.cov(z.numpy().astype(np.float64).T))
    pr = lam.sum() ** 2 / (lam**2).sum()
    p = lam / lam.sum()
    erank = math.exp(-(p * np.log(p)).sum())
    assert abs(float(participation_ratio(z)) - pr) < 1e-4 * pr
    assert abs(float(effective_rank(z)) - erank) < 1e-4 * erank


def test_singular_values_match_numpy():
    g = _gen(3)
    z = torch.randn(300, 12, generator=g) + 2.0
    sv = singular_values(z)
    assert sv.dtype == torch.float32 and sv.shape == (12,)
    assert torch.all(sv[:-1] >= sv[1:])
    x = z.numpy().astype(np.float64)
    np.testing.assert_allclose(sv.numpy(), np.linalg.svd(x, compute_uv=False), rtol=1e-5)
    np.testing.assert_allclose(
        singular_values(z, center=True).numpy(), np.linalg.svd(x - x.mean(0), compute_uv=False), rtol=1e-5
    )


def test_covariance_spectrum_matches_numpy():
    g = _gen(4)
    z = torch.randn(2000, 16, generator=g) * torch.linspace(0.5, 2.0, 16) + 1.0
    x = z.numpy().astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.sort(np.linalg.eigvalsh(np.cov(xn.T)))[::-1]
    spec = covariance_spectrum(z)
    assert spec.shape == (16,) and torch.all(spec[:-1] >= spec[1:])
    np.testing.assert_allclose(spec.numpy(), expected, rtol=1e-5, atol=1e-9)
    raw = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    np.testing.assert_allclose(covariance_spectrum(z, normalize=False).numpy(), raw, rtol=1e-5)
    # dimensional collapse shows as a cliff: rank-3 data have 13 ~zero eigenvalues
    low = torch.randn(2000, 3, generator=g) @ torch.randn(3, 16, generator=g)
    s = covariance_spectrum(low)
    assert float(s[2]) > 1e-3 and float(s[3:].max()) < 1e-9


def test_std_of_normalized_gaussian_and_collapse(gaussian):
    d = gaussian.shape[1]
    assert abs(float(std_of_normalized(gaussian)) * math.sqrt(d) - 1.0) < 0.05
    row = torch.randn(1, d, generator=_gen(5))
    assert float(std_of_normalized(row.repeat(1000, 1))) < 1e-6
    # equal up to a positive scale: still collapsed after normalisation
    scaled = row * torch.rand(1000, 1, generator=_gen(6)).add(0.5)
    assert float(std_of_normalized(scaled)) < 1e-6


def test_alpha_req_on_a_one_over_i_spectrum():
    # z = G diag(i^-1/2) Q: covariance eigenvalues ~ 1/i
    g = _gen(7)
    n, d = 20000, 256
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    scale = torch.arange(1, d + 1, dtype=torch.float32).rsqrt()
    z = torch.randn(n, d, generator=g) * scale @ q.T
    out = alpha_req(z)
    assert set(out) == {"alpha", "r2"}
    assert abs(float(out["alpha"]) - 1.0) < 0.05, out
    assert float(out["r2"]) > 0.95
    # white noise: alpha near 0
    assert abs(float(alpha_req(torch.randn(n, 64, generator=g))["alpha"])) < 0.1


@pytest.mark.parametrize("alpha,d", [(1.0, 256), (2.5, 64), (0.7, 12)])
def test_alpha_req_exact_power_law(alpha, d):
    # d = 12: [5, min(100, 6)) has one rank, so the fit falls back to ranks 1..6
    out = alpha_req(_power_law_exact(1000, d, alpha, seed=8))
    assert abs(float(out["alpha"]) - alpha) < 1e-4
    assert abs(float(out["r2"]) - 1.0) < 1e-6


def test_alpha_req_matches_independent_weighted_fit():
    g = _gen(9)
    d = 128
    z = torch.randn(5000, d, generator=g) * torch.linspace(3.0, 0.1, d).pow(1.5)
    lam = np.sort(np.linalg.eigvalsh(np.cov(z.numpy().astype(np.float64).T)))[::-1]
    i = np.arange(5, 64)
    x, y, w = np.log(i), np.log(lam[i - 1]), 1.0 / i
    slope, intercept = np.polyfit(x, y, 1, w=np.sqrt(w))  # polyfit weights multiply the residuals
    yw = (w * y).sum() / w.sum()
    r2 = 1 - (w * (y - slope * x - intercept) ** 2).sum() / (w * (y - yw) ** 2).sum()
    out = alpha_req(z)
    assert abs(float(out["alpha"]) + slope) < 1e-4
    assert abs(float(out["r2"]) - r2) < 1e-4


def test_alpha_req_small_dimension_and_rank_deficiency():
    g = _gen(10)
    with pytest.raises(ValueError, match="too small"):
        alpha_req(torch.randn(100, 4, generator=g))
    # exact rank deficiency (N < D): zero eigenvalues are left out; too few left -> NaN
    out = alpha_req(torch.randn(4, 64, generator=g))
    assert math.isnan(float(out["alpha"])) and math.isnan(float(out["r2"]))


def test_sigreg_statistic_reuses_sigreg(gaussian, monkeypatch):
    z = gaussian[:4000]
    value = sigreg_statistic(z, num_directions=64, generator=_gen(11))
    expected = SIGReg(num_directions=64)(z, generator=_gen(11))
    assert torch.allclose(value, expected, rtol=1e-6)
    # the default (generator=None) is deterministic
    assert torch.equal(sigreg_statistic(z, num_directions=64), sigreg_statistic(z, num_directions=64))
    # chunked projections (large N) give the same value as one pass
    monkeypatch.setattr(spectral, "_SIGREG_CHUNK_ELEMENTS", 4000 * 10)
    chunked = sigreg_statistic(z, num_directions=64, generator=_gen(11))
    assert torch.allclose(chunked, expected, rtol=1e-5)
    assert 0.5 < float(expected) < 2.0  # ~1.05 for a standard normal sample
    assert float(sigreg_statistic(torch.zeros(4000, 64) + 1.0, num_directions=16)) > 100


def test_outputs_are_detached_float32_and_inputs_untouched(gaussian):
    z = gaussian[:2000].clone().requires_grad_(True)
    before = z.detach().clone()
    scalars = [
        rankme(z),
        participation_ratio(z),
        effective_rank(z),
        std_of_normalized(z),
        sigreg_statistic(z, num_directions=8),
        *alpha_req(z).values(),
    ]
    for s in scalars:
        assert s.ndim == 0 and s.dtype == torch.float32 and not s.requires_grad
    for v in (singular_values(z), covariance_spectrum(z)):
        assert v.ndim == 1 and v.dtype == torch.float32 and not v.requires_grad
    assert torch.equal(z.detach(), before)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert participation_ratio(z.detach().bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError):
        participation_ratio(torch.randn(3, 4, 5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_spectral_on_cuda(gaussian):
    z = gaussian[:5000]
    zc = z.cuda()
    for fn in (rankme, participation_ratio, effective_rank, std_of_normalized):
        out = fn(zc)
        assert out.device.type == "cuda"
        assert abs(float(out) - float(fn(z))) < 1e-3 * abs(float(fn(z)))
    assert covariance_spectrum(zc).device.type == "cuda"
    assert alpha_req(zc)["alpha"].device.type == "cuda"
    assert sigreg_statistic(zc, num_directions=16).device.type == "cuda"
