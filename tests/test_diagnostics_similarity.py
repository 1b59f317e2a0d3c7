"""CKA against its invariances and direct N x N (centring-matrix) computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.diagnostics.similarity import cka_matrix, linear_cka, minibatch_cka


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def _cka_direct(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)
    k, l = x @ x.T, y @ y.T
    return _hsic_biased(k, l) / math.sqrt(_hsic_biased(k, k) * _hsic_biased(l, l))


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, written out with explicit N x N matrices."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(term1 + term2 - term3) / (n * (n - 3))


def test_linear_cka_invariances():
    g = _gen(0)
    x = torch.randn(2000, 16, generator=g) + 3.0
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert abs(float(linear_cka(x, x @ q)) - 1.0) < 1e-5
    assert abs(float(linear_cka(x, 7.5 * x)) - 1.0) < 1e-5
    assert abs(float(linear_cka(x, x + 100.0)) - 1.0) < 1e-5  # column-centred
    # not invariant to an anisotropic linear map
    assert float(linear_cka(x, x * torch.linspace(0.1, 10.0, 16))) < 0.9


def test_linear_cka_independent_noise_is_small():
    g = _gen(1)
    x, y = torch.randn(5000, 16, generator=g), torch.randn(5000, 16, generator=g)
    assert float(linear_cka(x, y)) < 0.05


@pytest.mark.parametrize("n,d1,d2", [(60, 10, 7), (12, 40, 30)])  # feature-space and sample-space paths
def test_linear_cka_matches_centring_matrix_hsic(n, d1, d2):
    g = _gen(2)
    x = torch.randn(n, d1, generator=g) + 1.0
    y = x[:, :1] * torch.randn(1, d2, generator=g) + torch.randn(n, d2, generator=g)
    assert abs(float(linear_cka(x, y)) - _cka_direct(x.numpy(), y.numpy())) < 1e-5


def test_minibatch_cka_one_batch_matches_explicit_unbiased_hsic():
    g = _gen(3)
    x = torch.randn(40, 6, generator=g) + 2.0  # uncentred: the estimator handles the centring
    y = x @ torch.randn(6, 9, generator=g) + torch.randn(40, 9, generator=g)
    xn, yn = x.double().numpy(), y.double().numpy()
    k, l = xn @ xn.T, yn @ yn.T
    expected = _hsic_unbiased(k, l) / math.sqrt(_hsic_unbiased(k, k) * _hsic_unbiased(l, l))
    assert abs(float(minibatch_cka([x], [y])) - expected) < 1e-6
    # wide features (sample-space Grams inside)
    xw = torch.randn(10, 50, generator=g)
    yw = xw[:, :20] + 0.5 * torch.randn(10, 20, generator=g)
    kw, lw = xw.double().numpy() @ xw.double().numpy().T, yw.double().numpy() @ yw.double().numpy().T
    expected_w = _hsic_unbiased(kw, lw) / math.sqrt(_hsic_unbiased(kw, kw) * _hsic_unbiased(lw, lw))
    assert abs(float(minibatch_cka([xw], [yw])) - expected_w) < 1e-6


def test_minibatch_cka_approaches_linear_cka():
    g = _gen(4)
    n, d = 8000, 32
    x = torch.randn(n, d, generator=g)
    y = torch.tanh(x @ torch.randn(d, 24, generator=g) / math.sqrt(d)) + 0.5 * torch.randn(n, 24, generator=g)
    full = float(linear_cka(x, y))
    mb = float(minibatch_cka(list(x.split(200)), list(y.split(200))))
    assert abs(mb - full) < 0.03, (mb, full)
    # the plain estimator on small batches is biased upwards for independent data; the unbiased one is not
    z = torch.randn(n, 24, generator=g)
    assert abs(float(minibatch_cka(list(x.split(200)), list(z.split(200))))) < 0.01
    plain = np.mean([float(linear_cka(a, b)) for a, b in zip(x.split(200), z.split(200))])
    assert plain > 0.1


def test_minibatch_cka_rejects_bad_batches():
    with pytest.raises(ValueError):
        minibatch_cka([torch.randn(3, 4)], [torch.randn(3, 4)])
    with pytest.raises(ValueError):
        minibatch_cka([torch.randn(8, 4)], [])


@pytest.mark.parametrize("n", [500, 8])  # feature-space and sample-space paths
def test_cka_matrix_matches_pairwise(n):
    g = _gen(5)
    base = torch.randn(n, 12, generator=g)
    layers = [
        base,
        base @ torch.randn(12, 20, generator=g),
        torch.relu(base @ torch.randn(12, 16, generator=g)) + 0.3 * torch.randn(n, 16, generator=g),
        torch.randn(n, 10, generator=g),
    ]
    m = cka_matrix(layers)
    assert m.shape == (4, 4) and m.dtype == torch.float32
    assert torch.equal(m, m.T)
    assert torch.equal(torch.diagonal(m), torch.ones(4))
    for i in range(4):
        for j in range(4):
            if i != j:
                assert abs(float(m[i, j]) - float(linear_cka(layers[i], layers[j]))) < 1e-5


def test_cka_matrix_constant_layer_and_inputs_untouched():
    g = _gen(6)
    x = torch.randn(100, 5, generator=g, requires_grad=True)
    before = x.detach().clone()
    m = cka_matrix([x, torch.full((100, 3), 0.1)])
    # the diagonal is 1 by definition; a constant layer's similarity to others is undefined (0/0)
    assert torch.equal(torch.diagonal(m), torch.ones(2)) and math.isnan(float(m[0, 1]))
    assert math.isnan(float(linear_cka(x, torch.full((100, 3), 0.1))))
    # round-off residues of centring a constant float64 layer are not similarity
    const64 = torch.randn(1, 4, generator=g, dtype=torch.float64).repeat(100, 1)
    assert math.isnan(float(linear_cka(x, const64))) and math.isnan(float(cka_matrix([x, const64])[0, 1]))
    assert not m.requires_grad and torch.equal(x.detach(), before)
    assert not linear_cka(x, x).requires_grad
    with pytest.raises(ValueError):
        cka_matrix([x, torch.randn(50, 5)])
    with pytest.raises(ValueError):
        linear_cka(x, torch.randn(50, 5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_similarity_on_cuda():
    g = _gen(7)
    x = torch.randn(3000, 32, generator=g)
    y = x @ torch.randn(32, 16, generator=g) + torch.randn(3000, 16, generator=g)
    xc, yc = x.cuda(), y.cuda()
    assert abs(float(linear_cka(xc, yc)) - float(linear_cka(x, y))) < 1e-5
    assert abs(float(minibatch_cka(list(xc.split(300)), list(yc.split(300)))) - float(
        minibatch_cka(list(x.split(300)), list(y.split(300)))
    )) < 1e-5
    m = cka_matrix([xc, yc, xc[:, :8]])
    assert m.device.type == "cuda"
    assert torch.allclose(m.cpu(), cka_matrix([x, y, x[:, :8]]), atol=1e-5)
