"""Probes: what a layer's embedding knows, and whether it knows it as one concept.

Every function takes torch tensors (``z``: N x D embeddings; labels: int64 N; factor columns:
float N), runs on ``z``'s device, is deterministic given ``seed`` and has a bounded cost: the
training split is capped at ``max_train`` samples and every solver has a fixed budget (closed-form
ridge, or full-batch L-BFGS with ``max_iter=steps``). Results are python floats or small dicts of
floats -- probes are end-of-epoch diagnostics, not part of the training graph.

* :func:`linear_probe` -- multinomial logistic regression accuracy (the standard linear evaluation);
* :func:`knn_accuracy` -- weighted k-nearest-neighbour accuracy on cosine similarity (DINO's kNN);
* :func:`linear_regression_r2` -- ridge-regression R^2 of a continuous target;
* :func:`factor_decodability` -- one of the two above per ground-truth factor (docs/concepts.md,
  "Diagnostics");
* :func:`coherence` -- probes trained separately per context and the agreement of their
  directions: a unified, reusable concept versus a fractured one (docs/concepts.md, "Coherence");
* :func:`region_context` -- image-region index from continuous positions, a context for
  :func:`coherence`.

The features are standardised with the *training split's* mean and std before every probe, so the
probes do not depend on the embedding's overall scale or offset. Train/test splits come from
:func:`train_test_split_indices` (a seeded CPU permutation, identical on every device).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..data.base import Factor

__all__ = [
    "train_test_split_indices",
    "linear_probe",
    "knn_accuracy",
    "linear_regression_r2",
    "factor_decodability",
    "coherence",
    "region_context",
]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _plain_math(device: torch.device) -> Iterator[None]:
    """Full-precision math with autograd available, whatever the caller's context.

    Probes are often called from a Lightning hook that runs under bf16 autocast and
    ``torch.inference_mode``; the L-BFGS fit needs gradients, and autocast would silently lower
    the precision of every matmul.
    """
    autocast = torch.autocast(device.type, enabled=False) if device.type in ("cuda", "cpu", "mps", "xpu") \
        else contextlib.nullcontext()
    with torch.inference_mode(False), torch.enable_grad(), autocast:
        yield


def _check_z(z: torch.Tensor, name: str = "z") -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise ValueError(f"{name} must be an N x D tensor, got shape {tuple(getattr(z, 'shape', ()))}")
    if z.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {z.shape[0]}")
    # a copy made outside inference mode: an inference-mode tensor cannot take part in autograd
    with torch.inference_mode(False):
        return z.detach().to(torch.float32).clone()


def _check_column(t: torch.Tensor, n: int, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(t).detach()
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be a vector of length {n} (one value per row of z), got shape {tuple(t.shape)}")
    with torch.inference_mode(False):
        return t.to(device).clone()


def _codes(t: torch.Tensor) -> torch.Tensor:
    """Integer codes of a label / categorical-factor column (factor codes are stored as floats)."""
    return t.round().long() if t.is_floating_point() else t.long()


def _split(n: int, test_fraction: float, seed: int, max_train: int | None, device: torch.device):
    train_idx, test_idx = train_test_split_indices(n, test_fraction, seed)
    if max_train is not None:
        if max_train < 1:
            raise ValueError(f"max_train must be >= 1, got {max_train}")
        train_idx = train_idx[:max_train]  # already a random permutation: a random subset
    return train_idx.to(device), test_idx.to(device)


def _standardiser(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (population) of the training features; constant features get std 1."""
    mean = x_train.mean(0)
    std = x_train.std(0, unbiased=False)
    std = torch.where(std > 1e-8 * (1.0 + mean.abs()), std, torch.ones_like(std))
    return mean, std


def _solve_device(device: torch.device) -> torch.device:
    """float64 linear algebra runs on the data's device, except on MPS (which has no float64)."""
    return torch.device("cpu") if device.type == "mps" else device


def _fit_softmax(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                 steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on (already standardised) ``x``: full-batch L-BFGS.

    Minimises ``mean_i CE(W x_i + b, y_i) + weight_decay / 2 * ||W||_F^2`` (bias not penalised)
    from W = 0, b = 0 with ``torch.optim.LBFGS(max_iter=steps, line_search_fn="strong_wolfe")``:
    one ``step`` call, a fixed iteration budget, deterministic. Returns (W: C x D, b: C), detached.
    """
    d = x.shape[1]
    w = torch.zeros(num_classes, d, device=x.device, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max(1, int(steps)), history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _ridge(x: torch.Tensor, t: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge with an (unpenalised) intercept on standardised ``x`` (float64).

    Solves ``(Xc^T Xc + ridge * n I) w = Xc^T (t - t_bar)`` with ``Xc`` the column-centred ``x``
    (for standardised training features ``Xc = X``); intercept ``t_bar - x_bar @ w``.
    """
    n, d = x.shape
    xm = x.mean(0)
    tm = t.mean(0)  # a vector target, or one column per output (one-hot classes)
    xc = x - xm
    a = xc.T @ xc + (ridge * n) * torch.eye(d, dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(a, xc.T @ (t - tm))
    return w, tm - xm @ w


def _route_kwargs(kw: dict[str, Any], *funcs) -> list[dict[str, Any]]:
    """Split ``**kw`` among functions by the keyword names they accept; unknown names raise."""
    accepted = [set(inspect.signature(f).parameters) for f in funcs]
    unknown = set(kw) - set().union(*accepted)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
    return [{k: v for k, v in kw.items() if k in acc} for acc in accepted]


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def train_test_split_indices(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded train/test split of ``range(n)``: (train_idx, test_idx), int64 CPU tensors.

    One ``torch.randperm`` from a CPU generator seeded with ``seed`` (so the split is the same on
    every device and every call); the first ``round(n * test_fraction)`` (at least 1, at most
    n - 1) permuted indices are the test split, the rest the training split, both in permuted (i.e.
    random) order -- taking a prefix of ``train_idx`` is a random subsample.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got n={n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(max(int(round(n * test_fraction)), 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_test:], perm[:n_test]


def _ridge_classifier(xs: torch.Tensor, y_idx: torch.Tensor, num_classes: int, ridge: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression onto one-hot targets (a least-squares linear classifier):
    exact, deterministic and a single D x D solve. Returns (W: C x D, b: C) in ``xs``'s dtype."""
    sdev = _solve_device(xs.device)
    targets = F.one_hot(y_idx, num_classes).to(sdev, torch.float64)
    w, b = _ridge(xs.to(sdev, torch.float64), targets, ridge)
    return w.T.to(xs.device, xs.dtype), b.to(xs.device, xs.dtype)


def linear_probe(z: torch.Tensor, y: torch.Tensor, test_fraction: float = 0.3, seed: int = 0,
                 weight_decay: float = 1e-4, steps: int = 200, max_train: int = 10000,
                 solver: str = "lbfgs", ridge: float = 1e-3) -> dict[str, float]:
    """Linear-probe accuracy of labels ``y`` (N integer codes) from embeddings ``z`` (N x D).

    The standard linear evaluation: how much of the label is *linearly* readable from the layer.
    Features are standardised with the training split's mean / std; a multinomial logistic
    regression with L2 penalty ``weight_decay / 2 * ||W||^2`` on the mean cross-entropy (the
    equivalent of scikit-learn's ``C = 1 / (weight_decay * n_train)``) is trained by full-batch
    L-BFGS (``max_iter=steps``, strong-Wolfe line search) on at most ``max_train`` training samples.

    ``solver="ridge"`` replaces the logistic regression by the closed-form ridge classifier
    (least squares onto one-hot targets, penalty ``ridge * n``): a converged answer at a fixed,
    small cost, where L-BFGS with a small ``steps`` budget can stop short of the optimum.

    Returns ``{"accuracy": test accuracy, "chance": frequency of the most common class in the test
    split}`` -- report both: accuracy only means something against chance.
    Label values need not be contiguous (they are re-indexed); a single class gives accuracy 1.
    """
    x = _check_z(z)
    device = x.device
    y = _codes(_check_column(y, x.shape[0], "y", device))
    with _plain_math(device):
        classes, y_idx = torch.unique(y, return_inverse=True)
        num_classes = int(classes.numel())
        train_idx, test_idx = _split(x.shape[0], test_fraction, seed, max_train, device)
        y_test = y_idx[test_idx]
        chance = float(torch.bincount(y_test, minlength=num_classes).max()) / y_test.numel()
        if num_classes < 2:
            return {"accuracy": 1.0, "chance": chance}
        mean, std = _standardiser(x[train_idx])
        xs = (x - mean) / std
        w, b = _fit_linear(xs[train_idx], y_idx[train_idx], num_classes, solver, weight_decay, steps, ridge)
        pred = (xs[test_idx] @ w.T + b).argmax(1)
        accuracy = float((pred == y_test).float().mean())
    return {"accuracy": accuracy, "chance": chance}


def _fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, solver: str, weight_decay: float, steps: int,
                ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    if solver == "lbfgs":
        return _fit_softmax(x, y, num_classes, weight_decay, steps)
    if solver == "ridge":
        return _ridge_classifier(x, y, num_classes, ridge)
    raise ValueError(f"solver must be 'lbfgs' or 'ridge', got {solver!r}")


def knn_accuracy(z: torch.Tensor, y: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 test_fraction: float = 0.3, seed: int = 0, max_train: int = 10000, chunk: int = 1024) -> float:
    """Weighted k-nearest-neighbour accuracy of labels ``y`` from embeddings ``z`` (DINO's kNN).

    A non-parametric complement to the linear probe: is the label *locally* consistent in the
    embedding's angular geometry? Embeddings are l2-normalised; each test sample's ``k`` most
    cosine-similar training samples (at most ``max_train`` of them) vote for their class with
    weight ``exp(sim / temperature)`` (Caron et al. 2021, following Wu et al. 2018); the class with
    the largest summed weight is predicted (ties: the lowest class index). Test samples are
    processed ``chunk`` at a time, so memory is O(chunk x n_train). Returns the test accuracy.
    """
    x = _check_z(z)
    device = x.device
    y = _codes(_check_column(y, x.shape[0], "y", device))
    if k < 1 or temperature <= 0 or chunk < 1:
        raise ValueError(f"need k >= 1, temperature > 0, chunk >= 1; got k={k}, temperature={temperature}, "
                         f"chunk={chunk}")
    with _plain_math(device), torch.no_grad():
        classes, y_idx = torch.unique(y, return_inverse=True)
        num_classes = int(classes.numel())
        train_idx, test_idx = _split(x.shape[0], test_fraction, seed, max_train, device)
        xn = F.normalize(x, dim=1)
        bank, bank_y = xn[train_idx], y_idx[train_idx]
        kk = min(int(k), bank.shape[0])
        correct = 0
        for start in range(0, test_idx.numel(), chunk):
            idx = test_idx[start:start + chunk]
            sim, nn = (xn[idx] @ bank.T).topk(kk, dim=1)
            votes = torch.zeros(idx.numel(), num_classes, device=device, dtype=sim.dtype)
            votes.scatter_add_(1, bank_y[nn], (sim / temperature).exp())
            correct += int((votes.argmax(1) == y_idx[idx]).sum())
    return correct / test_idx.numel()


def linear_regression_r2(z: torch.Tensor, t: torch.Tensor, test_fraction: float = 0.3, seed: int = 0,
                         ridge: float = 1e-3, max_train: int = 10000) -> float:
    """Held-out R^2 of a ridge regression of a continuous target ``t`` (N) on embeddings ``z``.

    How much of a continuous factor (position, size, ...) is linearly readable. Features are
    standardised with the training split's statistics; the closed-form ridge solution with an
    intercept, ``(X^T X + ridge * n_train I) w = X^T (t - t_bar)`` (float64), is fitted on at most
    ``max_train`` samples. Returns ``R^2 = 1 - SSE / SST`` on the test split with SST around the
    *test* mean: 1 is perfect, 0 is "no better than the test mean", negative is worse. Returns NaN
    when the target is constant on the test split (R^2 undefined).
    """
    x = _check_z(z)
    device = x.device
    t = _check_column(t, x.shape[0], "t", device).to(torch.float32)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    with _plain_math(device), torch.no_grad():
        train_idx, test_idx = _split(x.shape[0], test_fraction, seed, max_train, device)
        mean, std = _standardiser(x[train_idx])
        sdev = _solve_device(device)
        xs = ((x - mean) / std).to(sdev, torch.float64)
        t64 = t.to(sdev, torch.float64)
        train_idx, test_idx = train_idx.to(sdev), test_idx.to(sdev)
        w, b = _ridge(xs[train_idx], t64[train_idx], ridge)
        t_test = t64[test_idx]
        sse = float(((xs[test_idx] @ w + b - t_test) ** 2).sum())
        sst = float(((t_test - t_test.mean()) ** 2).sum())
    if sst <= 1e-12 * max(1.0, float((t_test ** 2).sum())):
        return math.nan
    return 1.0 - sse / sst


def factor_decodability(z: torch.Tensor, factors: torch.Tensor, specs: Sequence[Factor], seed: int = 0,
                        **kw: Any) -> dict[str, dict[str, Any]]:
    """Linear decodability of every ground-truth factor (docs/concepts.md, "Diagnostics").

    ``factors`` is the dataset's N x F factor matrix and ``specs`` its F :class:`Factor` entries,
    in column order. Categorical factors (integer codes, stored as floats) get
    :func:`linear_probe` accuracy, continuous ones :func:`linear_regression_r2`, all on the same
    seeded split. ``**kw`` goes to whichever of the two accepts each name (``test_fraction`` and
    ``max_train`` to both; ``weight_decay``, ``steps`` to the probe; ``ridge`` to the regression).

    Returns ``{factor name: {"kind": "categorical" | "continuous", "score": accuracy or R^2}}``.
    """
    x = _check_z(z)
    factors = torch.as_tensor(factors)
    if factors.ndim == 1:
        factors = factors[:, None]
    if factors.ndim != 2 or factors.shape[0] != x.shape[0] or factors.shape[1] != len(specs):
        raise ValueError(f"factors must be N x F with N={x.shape[0]} rows and F={len(specs)} columns "
                         f"(one per spec), got shape {tuple(factors.shape)}")
    probe_kw, reg_kw = _route_kwargs(kw, linear_probe, linear_regression_r2)
    out: dict[str, dict[str, Any]] = {}
    for j, spec in enumerate(specs):
        col = factors[:, j]
        if spec.kind == "categorical":
            score = linear_probe(x, _codes(col), seed=seed, **probe_kw)["accuracy"]
        elif spec.kind == "continuous":
            score = linear_regression_r2(x, col, seed=seed, **reg_kw)
        else:
            raise ValueError(f"factor {spec.name!r} has unknown kind {spec.kind!r}")
        out[spec.name] = {"kind": spec.kind, "score": float(score)}
    return out


def coherence(z: torch.Tensor, target: torch.Tensor, context: torch.Tensor, kind: str = "categorical",
              min_per_context: int = 20, seed: int = 0, *, test_fraction: float = 0.3,
              weight_decay: float = 1e-4, steps: int = 200, ridge: float = 1e-3,
              max_train: int = 10000, solver: str = "lbfgs", splits: int = 2,
              permutations: int = 2) -> dict[str, float]:
    """Coherence (or fracture) of a concept across contexts: do per-context probes agree?

    The "coherence and reuse" of the research question made measurable (docs/concepts.md, "Coherence"). The samples are
    split by the value of ``context`` (another factor's codes, or a :func:`region_context` index);
    in every context with at least ``min_per_context`` samples a linear probe for ``target`` is
    trained on that context alone (seeded split, ``test_fraction`` held out). Each probe's weight
    vector is mapped back to the ORIGINAL feature space (the standardised-space weight divided by
    the feature std, so the direction does not depend on per-context feature scales) and
    normalised to unit length.

    * ``kind="categorical"``: one-vs-rest is ambiguous with many classes (which class's direction
      should be compared?), so the target is made binary -- its most frequent class over *all*
      samples vs the rest, the same binary concept in every context -- and the probe is the L2
      logistic regression of :func:`linear_probe` (direction = positive-class logit weights; with
      ``solver="ridge"``, the difference of the closed-form ridge classifier's two columns).
      ``accuracy`` is held-out accuracy (for a binary target, chance is the majority fraction).
    * ``kind="continuous"``: the closed-form ridge of :func:`linear_regression_r2`;
      ``accuracy`` is the held-out R^2.

    Contexts with fewer than ``min_per_context`` samples, and contexts whose probe has no direction
    (the target is constant in the training split, or the embedding is constant there, so the
    weights stay exactly 0) are skipped: they enter neither ``cosine`` nor ``accuracy``.

    A probe trained on a few samples estimates its direction with noise, so even one shared
    direction gives a ``cosine`` well below 1 on a small probe set. Two reference points put the
    raw number on a scale:

    * the *ceiling* -- the same probe trained on two disjoint random halves of one context's
      training split: the cosine between the two half-probes is what perfect agreement looks like
      at that sample size (averaged over contexts and over ``splits`` random halvings);
    * the *floor* -- ``cosine`` recomputed after permuting the target within each context's
      training split (averaged over ``permutations`` permutations): the agreement of probes that
      carry no information about the target. A probe fitted to a permuted target favours no
      direction, so the floor is 0 up to chance for any embedding; how far from 0 it lands shows
      how large chance agreement is with these contexts, samples and dimensions (it spreads more
      with fewer contexts, and in an embedding whose variance sits in few directions). A fractured
      concept scores at the floor, not necessarily at 0.

    ``normalised`` compares like with like: the mean cosine between half-probes of *different*
    contexts divided by the ceiling (half-probes of the *same* context), both at the same sample
    size, so the estimation noise divides out. Dividing the full-split ``cosine`` by the half-split
    ceiling instead would overshoot 1, and extrapolating the ceiling to the full split
    (Spearman-Brown) assumes the probe's error shrinks as 1 / n, which fails when the samples per
    context are not many more than the dimensions.

    Returns:

    * ``cosine``: the mean pairwise cosine between the per-context unit directions. The absolute
      value is NOT taken: a flipped direction reads the concept backwards -- a different concept
      for any downstream linear reader. Near 1: one shared direction, a coherent, reusable
      concept; near 0 with high ``accuracy``: a fractured concept, decodable in every context but
      by unrelated directions. NaN with fewer than two usable contexts (small probe sets: lower
      ``min_per_context`` or use a coarser context).
    * ``accuracy``: the mean held-out accuracy (or R^2) of the per-context probes (NaN if none).
    * ``contexts``: the number of contexts used (as a float).
    * ``ceiling``: the mean within-context split-half cosine (NaN with ``splits=0`` or when no
      context's halves both have a direction).
    * ``normalised``: near 1 for one shared direction whatever the sample size, near 0 for
      independent ones, negative for flipped ones; NaN when the ceiling is not positive (the
      probes are noise) or fewer than two contexts have both halves. A ceiling close to 0 makes
      the ratio meaningless (it can take any size): read ``normalised`` where the ceiling stands
      clearly above 0, e.g. above the spread of ``floor``.
    * ``floor``: the permutation floor, on the scale of ``cosine`` (``floor / ceiling`` puts it on
      the scale of ``normalised``); NaN with ``permutations=0``.
    """
    if kind not in ("categorical", "continuous"):
        raise ValueError(f"kind must be 'categorical' or 'continuous', got {kind!r}")
    for name, value in (("splits", splits), ("permutations", permutations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    x = _check_z(z)
    device = x.device
    n = x.shape[0]
    target = _check_column(target, n, "target", device)
    ctx = _codes(_check_column(context, n, "context", device))
    if kind == "categorical":
        codes = _codes(target)
        values, counts = torch.unique(codes, return_counts=True)
        positive = values[counts.argmax()]  # ties: the smallest code
        target = (codes == positive).long()
    else:
        target = target.to(torch.float32)

    def direction(xc: torch.Tensor, tc: torch.Tensor, train_idx: torch.Tensor,
                  test_idx: torch.Tensor | None = None) -> tuple[torch.Tensor | None, float]:
        """The unit direction of a probe trained on ``train_idx`` of one context (None when it has
        none) and its held-out score on ``test_idx`` (NaN without one)."""
        mean, std = _standardiser(xc[train_idx])
        xs = (xc - mean) / std
        score = math.nan
        if kind == "categorical":
            y_train = tc[train_idx]
            if int(y_train.min()) == int(y_train.max()):
                return None, score
            w, b = _fit_linear(xs[train_idx], y_train, 2, solver, weight_decay, steps, ridge)
            if test_idx is not None:
                pred = (xs[test_idx] @ w.T + b).argmax(1)
                score = float((pred == tc[test_idx]).float().mean())
            d = (w[1] - w[0]) / std
        else:
            with torch.no_grad():
                y_train = tc[train_idx]
                if float(y_train.max() - y_train.min()) <= 0.0:
                    return None, score
                sdev = _solve_device(device)
                xs64 = xs.to(sdev, torch.float64)
                t64 = tc.to(sdev, torch.float64)
                tr = train_idx.to(sdev)
                w64, b64 = _ridge(xs64[tr], t64[tr], ridge)
                if test_idx is not None:
                    te = test_idx.to(sdev)
                    t_test = t64[te]
                    sst = float(((t_test - t_test.mean()) ** 2).sum())
                    sse = float(((xs64[te] @ w64 + b64 - t_test) ** 2).sum())
                    score = 1.0 - sse / sst if sst > 0 else math.nan
                d = w64.to(device, torch.float32) / std
        norm = d.norm()
        if not torch.isfinite(norm) or float(norm) == 0.0:
            return None, score
        return (d / norm).detach(), score

    # the usable contexts: their samples and the seeded training / test split of each
    groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    directions: list[torch.Tensor] = []
    scores: list[float] = []
    with _plain_math(device):
        for c in torch.unique(ctx).tolist():
            members = (ctx == c).nonzero().squeeze(1)
            if members.numel() < max(int(min_per_context), 2):
                continue
            xc, tc = x[members], target[members]
            train_idx, test_idx = _split(members.numel(), test_fraction, seed, max_train, device)
            d, score = direction(xc, tc, train_idx, test_idx)
            if d is None:
                continue
            groups.append((xc, tc, train_idx, test_idx))
            directions.append(d)
            scores.append(score)

        # Halvings and permutations come from one seeded CPU generator, drawn in a fixed order:
        # the same numbers on every device.
        g = torch.Generator().manual_seed(int(seed))
        within: list[float] = []
        across: list[float] = []
        for _ in range(splits):
            halves: list[tuple[torch.Tensor, torch.Tensor]] = []  # (context, 2 x D) of this halving
            for i, (xc, tc, train_idx, _) in enumerate(groups):
                perm = torch.randperm(train_idx.numel(), generator=g).to(device)
                half = train_idx.numel() // 2
                if half < 2:
                    continue
                a, _ = direction(xc, tc, train_idx[perm[:half]])
                b, _ = direction(xc, tc, train_idx[perm[half:2 * half]])
                if a is not None and b is not None:
                    halves.append((i, torch.stack([a, b]).double()))
            within += [float(h[0] @ h[1]) for _, h in halves]
            # every half of one context against every half of another (4 pairs per pair of contexts)
            across += [float((h1 @ h2.T).mean()) for k, (_, h1) in enumerate(halves) for _, h2 in halves[k + 1:]]
        floors: list[float] = []
        for _ in range(permutations):
            shuffled = []
            for xc, tc, train_idx, _ in groups:
                perm = torch.randperm(train_idx.numel(), generator=g).to(device)
                tp = tc.clone()
                tp[train_idx] = tc[train_idx[perm]]
                d, _ = direction(xc, tp, train_idx)
                if d is not None:
                    shuffled.append(d)
            if len(shuffled) >= 2:
                floors.append(_mean_pairwise_cosine(shuffled))

    cosine = _mean_pairwise_cosine(directions) if len(directions) >= 2 else math.nan
    finite = [s for s in scores if not math.isnan(s)]
    accuracy = sum(finite) / len(finite) if finite else math.nan
    ceiling = sum(within) / len(within) if within else math.nan
    normalised = (sum(across) / len(across)) / ceiling if across and ceiling > 0 else math.nan
    floor = sum(floors) / len(floors) if floors else math.nan
    return {"cosine": cosine, "accuracy": accuracy, "contexts": float(len(directions)), "ceiling": ceiling,
            "normalised": normalised, "floor": floor}


def _mean_pairwise_cosine(directions: Sequence[torch.Tensor]) -> float:
    """Mean cosine over the distinct pairs of unit vectors (float64)."""
    m = len(directions)
    d = torch.stack(list(directions)).double()
    gram = d @ d.T
    return float((gram.sum() - gram.diagonal().sum()) / (m * (m - 1)))


def region_context(positions_x: torch.Tensor, positions_y: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """Image-region index (int64, N) of each sample from continuous positions in [0, 1].

    The image is cut into a ``grid x grid`` array of equal cells; ``col = floor(x * grid)`` and
    ``row = floor(y * grid)`` (clamped to ``0 .. grid - 1``, so x = 1 falls in the last cell), and
    the index is ``row * grid + col`` (row-major; with the shapes data's y-down convention, 0 is the
    top-left cell). A "per image region" context for :func:`coherence`, e.g. from the shapes data's
    ``pos_x`` / ``pos_y`` factors. Returned on ``positions_x``'s device.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    px = torch.as_tensor(positions_x).detach()
    py = torch.as_tensor(positions_y).detach().to(px.device)
    if px.shape != py.shape or px.ndim != 1:
        raise ValueError(f"positions_x and positions_y must be vectors of the same length, got shapes "
                         f"{tuple(px.shape)} and {tuple(py.shape)}")
    col = torch.floor(px.double() * grid).clamp(0, grid - 1).long()
    row = torch.floor(py.double() * grid).clamp(0, grid - 1).long()
    return row * grid + col
