"""Representation similarity: linear CKA, minibatch CKA (unbiased HSIC), layer x layer CKA matrices.

Definitions: docs/concepts.md, "Diagnostics". Inputs are ``N x D`` tensors whose rows are the same N examples
(any device, any D per input); they are not modified. Everything is computed under ``no_grad``
with autocast disabled, in float64, through whichever Gram is cheaper: the feature-space ones
(``D1 x D2``, cost O(N D1 D2), the usual case N >> D; :func:`cka_matrix` accumulates them over
row blocks) or the sample-space ones (``N x N``, only when N is small compared with the widths).
Results are float32 tensors on the input's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .spectral import _CONSTANT_RTOL, _centred


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str, min_rows: int = 1) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"{name} expects N x D1 and N x D2 matrices, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x and y must have the same number of rows (examples), got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} examples, got {x.shape[0]}")


def _cross_sq(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""``||x^T y||_F^2 = <x x^T, y y^T>_F`` through the cheaper Gram (float64 in, float64 out)."""
    n, d1 = x.shape
    d2 = y.shape[1]
    if n * (d1 + d2 + 1) < d1 * d2:  # sample space is cheaper
        return ((x @ x.T) * (y @ y.T)).sum()
    return (x.T @ y).square().sum()


def _centre(x: torch.Tensor) -> torch.Tensor:
    """Column-centred float64 copy, exactly zero for a constant input (see spectral._centred)."""
    return _centred(x.detach())


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Linear centred kernel alignment between two representations of the same N examples.

    With X (``N x D1``) and Y (``N x D2``) **column-centred**:

    .. math::

        \mathrm{CKA}(X, Y) = \frac{\|Y^\top X\|_F^2}{\|X^\top X\|_F\, \|Y^\top Y\|_F}
        = \frac{\mathrm{HSIC}(K, L)}{\sqrt{\mathrm{HSIC}(K, K)\,\mathrm{HSIC}(L, L)}},\qquad
        K = XX^\top,\ L = YY^\top

    (the biased HSIC :math:`\operatorname{tr}(KHLH)/(N-1)^2`, whose normalisation cancels).
    In [0, 1]; invariant to orthogonal transforms and isotropic scaling of either side, not to
    arbitrary invertible linear maps. For independent X and Y it is biased upwards by about
    :math:`\sqrt{D_1 D_2}/N`-ish, so compare at fixed N. Reference: Kornblith et al., "Similarity
    of Neural Network Representations Revisited", ICML 2019.

    Cost O(N D1 D2 + N D1^2 + N D2^2) through the feature-space Grams (N x N Grams instead when N
    is small compared with the widths). NaN when either input is constant (relative spread below
    1e-12: CKA is 0/0 there). Returns a 0-d float32 tensor on ``x``'s device.
    """
    _check_pair(x, y, "linear_cka", min_rows=2)
    with torch.autocast(x.device.type, enabled=False), torch.no_grad():
        xc, yc = _centre(x), _centre(y.to(x.device))
        num = _cross_sq(xc, yc)
        den = _cross_sq(xc, xc).sqrt() * _cross_sq(yc, yc).sqrt()
        return (num / den).float()


def _unbiased_hsic_linear(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Unbiased HSIC (Song et al. 2012) of linear kernels K = x x^T, L = y y^T, without N x N matrices.

    With :math:`\tilde K`, :math:`\tilde L` the kernels with zeroed diagonals:
    :math:`\frac{1}{n(n-3)}\big[\operatorname{tr}(\tilde K \tilde L)
    + \frac{\mathbf 1^\top \tilde K \mathbf 1\, \mathbf 1^\top \tilde L \mathbf 1}{(n-1)(n-2)}
    - \frac{2}{n-2} \mathbf 1^\top \tilde K \tilde L \mathbf 1\big]`, where
    :math:`\operatorname{tr}(\tilde K \tilde L) = \|x^\top y\|_F^2 - \sum_i \|x_i\|^2 \|y_i\|^2`,
    :math:`\tilde K \mathbf 1 = x (x^\top \mathbf 1) - \mathrm{diag}(K)`.
    """
    n = x.shape[0]
    rx, ry = x.square().sum(dim=1), y.square().sum(dim=1)
    kx = x @ x.sum(dim=0) - rx  # K~ 1
    ly = y @ y.sum(dim=0) - ry  # L~ 1
    trace = _cross_sq(x, y) - (rx * ry).sum()
    return (trace + kx.sum() * ly.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (kx @ ly)) / (n * (n - 3))


def minibatch_cka(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Minibatch linear CKA (Nguyen et al. 2021): unbiased HSIC averaged over batches.

    ``xs[k]`` (``N_k x D1``) and ``ys[k]`` (``N_k x D2``) are two representations of the same batch
    of examples. With :math:`K_k = X_k X_k^\top`, :math:`L_k = Y_k Y_k^\top` (linear kernels) and
    :math:`\mathrm{HSIC}_1` the unbiased estimator of Song et al., "Feature Selection via Dependence
    Maximization", JMLR 2012:

    .. math::

        \mathrm{HSIC}_1(K, L) = \frac{1}{n(n-3)}\Big[\operatorname{tr}(\tilde K \tilde L)
            + \frac{\mathbf 1^\top \tilde K \mathbf 1\ \mathbf 1^\top \tilde L \mathbf 1}{(n-1)(n-2)}
            - \frac{2}{n-2}\, \mathbf 1^\top \tilde K \tilde L \mathbf 1\Big]

        \mathrm{CKA}_{mb} = \frac{\frac1k \sum_k \mathrm{HSIC}_1(K_k, L_k)}
            {\sqrt{\frac1k \sum_k \mathrm{HSIC}_1(K_k, K_k)\ \frac1k \sum_k \mathrm{HSIC}_1(L_k, L_k)}}

    (:math:`\tilde K`: K with its diagonal zeroed). Reference: Nguyen, Raghu & Kornblith, "Do Wide
    and Deep Networks Learn the Same Things?", ICLR 2021. The estimator is unbiased per batch, so
    the average over many batches converges to the full-data CKA without the small-batch bias of
    the plain estimator. Convention: features are centred per batch before the kernels are formed
    (HSIC_1 is exactly invariant to that shift; it only improves float64 round-off). Computed
    without N x N matrices when the batch is larger than the widths. Each batch needs at least 4
    examples. Can be slightly negative, or NaN, for a few tiny batches (the estimates are noisy).
    Returns a 0-d float32 tensor on the first batch's device.
    """
    if len(xs) != len(ys) or len(xs) == 0:
        raise ValueError(f"minibatch_cka expects two non-empty lists of the same length, got {len(xs)} and {len(ys)}")
    device = xs[0].device
    with torch.autocast(device.type, enabled=False), torch.no_grad():
        kl = torch.zeros((), dtype=torch.float64, device=device)
        kk, ll = kl.clone(), kl.clone()
        for k, (x, y) in enumerate(zip(xs, ys)):
            _check_pair(x, y, f"minibatch_cka (batch {k})", min_rows=4)
            xc, yc = _centre(x.to(device)), _centre(y.to(device))
            kl += _unbiased_hsic_linear(xc, yc)
            kk += _unbiased_hsic_linear(xc, xc)
            ll += _unbiased_hsic_linear(yc, yc)
        return (kl / (kk * ll).sqrt()).float()


def _centred_cross(x: torch.Tensor, y: torch.Tensor, mx: torch.Tensor, my: torch.Tensor, chunk: int) -> torch.Tensor:
    r"""``(x - mx)^T (y - my)`` in float64, summed over blocks of ``chunk`` rows.

    Only one block of each input is ever centred and converted to float64, so the memory is
    O(chunk (D1 + D2) + D1 D2) whatever N, instead of two full float64 copies.
    """
    out = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk].double() - mx
        yb = y[start : start + chunk].to(x.device).double() - my
        out += xb.T @ yb
    return out


def cka_matrix(layers: Sequence[torch.Tensor], chunk: int = 4096) -> torch.Tensor:
    r"""Linear CKA between every pair of representations: an ``L x L`` symmetric matrix.

    ``layers[l]`` is ``N x D_l`` (the same N examples for all, any widths). Entry (l, m) is
    :func:`linear_cka` of layers l and m (column-centred, Kornblith et al. 2019):

    .. math::

        \mathrm{CKA}_{lm} = \frac{\|X_m^\top X_l\|_F^2}{\|X_l^\top X_l\|_F \|X_m^\top X_m\|_F}
        = \frac{\langle K_l, K_m \rangle_F}{\|K_l\|_F \|K_m\|_F},\qquad K_l = X_l X_l^\top

    The two forms are equal (:math:`\langle XX^\top, YY^\top\rangle_F = \|Y^\top X\|_F^2`); the
    feature-space one is what is computed when N is at least the smallest width: each cross Gram
    :math:`X_l^\top X_m` (``D_l x D_m``, float64) is accumulated over blocks of ``chunk`` rows,
    each block centred with the layer's float64 column mean, so memory stays O(chunk D + D^2)
    however many examples (never a float64 copy of a whole layer, never N x N); the work is
    O(N D_l D_m) per pair. When N is smaller than every width, the centred N x N Grams are formed
    once instead and each pair costs O(N^2). The diagonal is exactly 1, by definition, for every
    layer; the off-diagonal entries of a constant layer (relative spread below 1e-12, e.g. a CLS
    token before the first block) are NaN, as in :func:`linear_cka` (0/0).

    Returns an ``L x L`` float32 tensor on the first layer's device.
    """
    if len(layers) == 0:
        raise ValueError("cka_matrix expects a non-empty list of N x D tensors")
    n = layers[0].shape[0]
    for k, x in enumerate(layers):
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"cka_matrix: layer {k} has shape {tuple(x.shape)}; expected {n} x D (the same N for all)")
    if n < 2:
        raise ValueError(f"cka_matrix needs at least 2 examples, got {n}")
    if chunk < 1:
        raise ValueError(f"cka_matrix: chunk={chunk} is invalid: use a positive number of rows")
    device = layers[0].device
    nl = len(layers)
    with torch.autocast(device.type, enabled=False), torch.no_grad():
        out = torch.empty(nl, nl, dtype=torch.float64, device=device)
        if n < min(x.shape[1] for x in layers):  # sample space: n x n Grams, smaller than any D x D
            grams = []
            for x in layers:
                xc = _centre(x.to(device))
                grams.append(xc @ xc.T)
            norms = torch.stack([g.square().sum().sqrt() for g in grams])
            for i in range(nl):
                for j in range(i + 1, nl):
                    out[i, j] = out[j, i] = (grams[i] * grams[j]).sum() / (norms[i] * norms[j])
        else:
            xs = [x.detach().to(device) for x in layers]
            means = [x.mean(dim=0, dtype=torch.float64) for x in xs]
            norms = torch.empty(nl, dtype=torch.float64, device=device)
            varies = torch.empty(nl, dtype=torch.float64, device=device)
            for i, x in enumerate(xs):
                gram = _centred_cross(x, x, means[i], means[i], chunk)
                # as spectral._centred: a layer whose centred spread is round-off is constant, and
                # counts as exactly zero (0/0 = NaN against any layer, not a ratio of residues)
                total = sum(x[s : s + chunk].double().square().sum() for s in range(0, n, chunk))
                varies[i] = gram.diagonal().sum() > _CONSTANT_RTOL**2 * total
                norms[i] = gram.square().sum().sqrt() * varies[i]
            for i in range(nl):
                for j in range(i + 1, nl):
                    num = _centred_cross(xs[i], xs[j], means[i], means[j], chunk).square().sum()
                    out[i, j] = out[j, i] = num * varies[i] * varies[j] / (norms[i] * norms[j])
        out.diagonal().fill_(1.0)
        return out.float()


__all__ = ["cka_matrix", "linear_cka", "minibatch_cka"]
