"""Geometric diagnostics against analytic cases and direct (loop / N x N) computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.diagnostics.geometry import (
    alignment,
    invariance_score,
    lidar,
    residual_ratio,
    token_cosine,
    uniformity,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# alignment / uniformity


def test_alignment_identical_antipodal_and_direct():
    g = _gen(0)
    x = torch.randn(500, 16, generator=g)
    assert float(alignment(x, 3.0 * x)) < 1e-10  # scale does not matter: pairs are normalised
    assert abs(float(alignment(x, -x)) - 4.0) < 1e-6
    assert abs(float(alignment(x, -x, alpha=1)) - 2.0) < 1e-6
    y = torch.randn(500, 16, generator=g)
    direct = (np.linalg.norm(_unit(x.double().numpy()) - _unit(y.double().numpy()), axis=1) ** 2).mean()
    assert abs(float(alignment(x, y)) - direct) < 1e-5


def _uniformity_direct(z: np.ndarray, t: float = 2.0) -> float:
    u = _unit(z.astype(np.float64))
    sq = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(u), k=1)
    return float(np.log(np.exp(-t * sq[iu]).mean()))


def test_uniformity_collapse_gaussian_and_direct():
    g = _gen(1)
    assert abs(float(uniformity(torch.randn(1, 32, generator=g).repeat(300, 1)))) < 1e-6
    z = torch.randn(5000, 32, generator=g)
    value = float(uniformity(z))
    assert -4.0 < value < -3.0
    small = z[:300]
    assert abs(float(uniformity(small)) - _uniformity_direct(small.numpy())) < 1e-5
    assert abs(float(uniformity(small, t=0.5)) - _uniformity_direct(small.numpy(), t=0.5)) < 1e-5


def test_uniformity_subsample_is_seeded_and_matches_direct():
    z = torch.randn(3000, 8, generator=_gen(2))
    value = uniformity(z, max_samples=200, generator=_gen(3))
    idx = torch.randperm(3000, generator=_gen(3))[:200]
    assert abs(float(value) - _uniformity_direct(z[idx].numpy())) < 1e-5
    # default generator: deterministic; the subsample estimate is close to the full one
    assert torch.equal(uniformity(z, max_samples=200), uniformity(z, max_samples=200))
    assert abs(float(uniformity(z, max_samples=1000)) - float(uniformity(z))) < 0.05


# ---------------------------------------------------------------------------------------------
# tokens


def _token_cosine_direct(tokens: np.ndarray) -> float:
    h = tokens.astype(np.float64)
    h = h - h.reshape(-1, h.shape[-1]).mean(0)
    out = []
    for img in h:
        u = _unit(img)
        c = u @ u.T
        t = len(u)
        out.append((c.sum() - np.trace(c)) / (t * (t - 1)))
    return float(np.mean(out))


def test_token_cosine_cases():
    g = _gen(4)
    b, t, d = 64, 49, 32
    iid = torch.randn(b, t, d, generator=g)
    assert abs(float(token_cosine(iid))) < 0.01
    # a large shared offset does not matter: the dataset-mean token is removed
    assert abs(float(token_cosine(iid + 50.0))) < 0.01
    # identical tokens within each image, different images: cosine 1 after removing the mean
    same = torch.randn(b, 1, d, generator=g).repeat(1, t, 1) + 10.0
    assert abs(float(token_cosine(same)) - 1.0) < 1e-6
    # independent check on a mixture
    mixed = torch.randn(8, 10, 6, generator=g) + torch.randn(8, 1, 6, generator=g)
    assert abs(float(token_cosine(mixed)) - _token_cosine_direct(mixed.numpy())) < 1e-5


def test_residual_ratio_cases():
    g = _gen(5)
    b, t, d = 64, 49, 32
    same = torch.randn(b, 1, d, generator=g).repeat(1, t, 1)
    assert float(residual_ratio(same)) < 1e-6
    iid = torch.randn(b, t, d, generator=g)
    assert abs(float(residual_ratio(iid)) - math.sqrt(1 - 1 / t)) < 0.01
    small = torch.randn(5, 7, 3, generator=g) + 1.0
    h = small.double().numpy()
    direct = np.mean([np.linalg.norm(x - x.mean(0)) / np.linalg.norm(x) for x in h])
    assert abs(float(residual_ratio(small)) - direct) < 1e-6
    assert float(residual_ratio(torch.zeros(2, 4, 3))) == 0.0


# ---------------------------------------------------------------------------------------------
# invariance


def test_invariance_score_cases():
    g = _gen(6)
    z = torch.randn(2000, 64, generator=g)
    assert abs(float(invariance_score(z, z)) - 1.0) < 0.02
    assert abs(float(invariance_score(z, torch.randn(2000, 64, generator=g)))) < 0.02
    # collapse: all cosines 1, the baseline removes them
    c = torch.randn(1, 64, generator=g).repeat(100, 1)
    assert abs(float(invariance_score(c, c))) < 1e-6
    # direct N x N computation
    a, b = torch.randn(50, 5, generator=g), torch.randn(50, 5, generator=g)
    cos = _unit(a.double().numpy()) @ _unit(b.double().numpy()).T
    off = (cos.sum() - np.trace(cos)) / (50 * 49)
    assert abs(float(invariance_score(a, a + b)) - _direct_inv(a, a + b)) < 1e-6
    assert abs(float(invariance_score(a, b)) - (np.trace(cos) / 50 - off)) < 1e-6


def _direct_inv(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = _unit(a.double().numpy()) @ _unit(b.double().numpy()).T
    n = len(cos)
    return float(np.trace(cos) / n - (cos.sum() - np.trace(cos)) / (n * (n - 1)))


# ---------------------------------------------------------------------------------------------
# LiDAR


def _lidar_direct(z: np.ndarray, eps: float = 1e-8, delta: float = 1e-4) -> float:
    n, q, d = z.shape
    z = z.astype(np.float64)
    mu_x = z.mean(1)
    mu = mu_x.mean(0)
    sb = sum(np.outer(m - mu, m - mu) for m in mu_x) / (n - 1)
    sw = sum(np.outer(v - mu_x[i], v - mu_x[i]) for i in range(n) for v in z[i]) / (n * (q - 1)) + delta * np.eye(d)
    w, v = np.linalg.eigh(sw)
    inv_sqrt = v @ np.diag(w**-0.5) @ v.T
    lam = np.clip(np.linalg.eigvalsh(inv_sqrt @ sb @ inv_sqrt), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def test_lidar_matches_direct_computation():
    g = _gen(7)
    z = torch.randn(12, 5, 8, generator=g) + 2.0 * torch.randn(12, 1, 8, generator=g)
    z[..., 0] *= 10.0  # anisotropic within-noise: the whitening matters
    assert abs(float(lidar(z)) - _lidar_direct(z.numpy())) < 1e-4


def test_lidar_well_separated_means_is_about_n():
    g = _gen(8)
    n, q, d = 20, 8, 64
    # orthogonal, centred image means: Sigma_b has n - 1 equal eigenvalues
    basis, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    means = 10.0 * basis.T
    means = means - means.mean(0)
    exact = means.unsqueeze(1).repeat(1, q, 1)
    assert abs(float(lidar(exact)) - (n - 1)) < 0.01  # no within-noise: Sigma_w = delta I
    noisy = exact + 0.01 * torch.randn(n, q, d, generator=g, dtype=torch.float64)
    assert 0.85 * (n - 1) < float(lidar(noisy)) <= n - 1 + 0.01
    # random (not orthogonal) well-separated means with noise: still of the order of n
    rand = 10.0 * torch.randn(n, 1, d, generator=g) + 0.01 * torch.randn(n, q, d, generator=g)
    assert 0.6 * (n - 1) < float(lidar(rand)) <= n - 1 + 0.01


def test_lidar_about_one_for_shared_mean_or_one_direction():
    g = _gen(9)
    n, q, d = 20, 8, 32
    # complete collapse: every image and view at one point
    assert abs(float(lidar(torch.ones(n, q, d))) - 1.0) < 1e-3
    # image means that vary along one direction only, small within-noise
    direction = torch.randn(d, generator=g)
    line = 10.0 * torch.randn(n, 1, 1, generator=g) * direction + 0.01 * torch.randn(n, q, d, generator=g)
    assert float(lidar(line)) < 1.2


def test_geometry_outputs_and_inputs():
    g = _gen(10)
    z = torch.randn(100, 8, generator=g, requires_grad=True)
    tok = torch.randn(4, 6, 8, generator=g)
    before = z.detach().clone(), tok.clone()
    outs = [
        alignment(z, z + 1),
        uniformity(z),
        invariance_score(z, z + 1),
        token_cosine(tok),
        residual_ratio(tok),
        lidar(z.reshape(25, 4, 8)),
    ]
    for o in outs:
        assert o.ndim == 0 and o.dtype == torch.float32 and not o.requires_grad
    assert torch.equal(z.detach(), before[0]) and torch.equal(tok, before[1])
    with pytest.raises(ValueError):
        token_cosine(torch.randn(4, 1, 8))
    with pytest.raises(ValueError):
        lidar(torch.randn(10, 8))
    with pytest.raises(ValueError):
        invariance_score(z, z[:50])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_geometry_on_cuda():
    g = _gen(11)
    z = torch.randn(6000, 32, generator=g)
    tok = torch.randn(16, 10, 32, generator=g)
    cases = [
        (uniformity, (z,)),
        (alignment, (z, z.flip(0))),
        (invariance_score, (z, z + 0.1)),
        (token_cosine, (tok,)),
        (residual_ratio, (tok,)),
        (lidar, (z[:4000].reshape(500, 8, 32),)),
    ]
    for fn, args in cases:
        out = fn(*[a.cuda() for a in args])
        assert out.device.type == "cuda"
        assert abs(float(out) - float(fn(*args))) < 1e-4 * max(1.0, abs(float(fn(*args)))), fn.__name__
    gen = torch.Generator(device="cuda").manual_seed(0)
    assert uniformity(z.cuda(), max_samples=100, generator=gen).device.type == "cuda"
