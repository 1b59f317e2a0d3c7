"""Every loss against an independently worked-out case (hand values, plain loops, numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.losses import (
    BarlowTwinsLoss,
    DINOLoss,
    KLConsistencyLoss,
    LeJEPALoss,
    NTXentLoss,
    PatchReconstructionLoss,
    LatentPredictionLoss,
    layer_normalised,
    top_k_average,
    SIGReg,
    VICRegLoss,
    covariance_loss,
    epps_pulley,
    epps_pulley_quadrature,
    patchify,
    unpatchify,
    variance_loss,
)
from workbench.models.vit import PatchEmbed

# 4 x 4 Hadamard matrix: columns 1..3 are centred, mutually orthogonal, with biased variance 1.
HADAMARD = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float32)
WHITE = HADAMARD[:, 1:].clone()  # 4 x 3


def close(a, b, rel=1e-5, abs_=1e-6):
    return float(a) == pytest.approx(float(b), rel=rel, abs=abs_)


# ---------------------------------------------------------------------------------------------- DINO

def _entropy(p):
    return -(p * p.log()).sum(-1)


def test_dino_identical_logits_give_teacher_entropy():
    torch.manual_seed(0)
    t = torch.randn(5, 7)
    loss_fn = DINOLoss(7, student_temp=0.1)
    # one teacher view; student view 0 is the same crop (excluded), student view 1 has the same logits
    loss, parts = loss_fn.forward_parts([t, t], [t], teacher_temp=0.1)
    expected = _entropy(F.softmax(t / 0.1, dim=-1)).mean()
    assert close(loss, expected)
    assert close(parts["teacher_entropy"], expected)
    assert abs(float(parts["kl"])) < 1e-5


def test_dino_hand_computed_two_classes():
    # teacher logits [0, 0.5 log 3] at tau_t = 0.5 -> P_t = [1/4, 3/4];
    # student logits [0, log 2] at tau_s = 0.5 -> P_s = [1/5, 4/5];
    # CE = -(1/4 log 1/5 + 3/4 log 4/5) = log 5 - 1.5 log 2
    teacher = torch.tensor([[0.0, 0.5 * math.log(3.0)]])
    student = torch.tensor([[0.0, math.log(2.0)]])
    loss_fn = DINOLoss(2, student_temp=0.5)
    loss, parts = loss_fn.forward_parts([torch.full((1, 2), 123.0), student], [teacher], teacher_temp=0.5)
    assert close(loss, math.log(5.0) - 1.5 * math.log(2.0))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert close(parts["teacher_entropy"], h)
    kl = 0.25 * math.log(0.25 / 0.2) + 0.75 * math.log(0.75 / 0.8)
    assert close(parts["kl"], kl)
    # the centre moved towards the teacher output: c = 0.9 * 0 + 0.1 * t
    assert torch.allclose(loss_fn.center, 0.1 * teacher)


def _dino_manual(student, teacher, center, tau_s, tau_t):
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        p = F.softmax((t - center) / tau_t, dim=-1)
        for v, s in enumerate(student):
            if v == i:
                continue
            total = total + (-(p * F.log_softmax(s / tau_s, dim=-1)).sum(-1)).mean()
            pairs += 1
    return total / pairs


def test_dino_excludes_same_view_pairs_and_updates_centre_exactly():
    torch.manual_seed(1)
    k, b, m = 6, 4, 0.9
    loss_fn = DINOLoss(k, student_temp=0.1, center_momentum=m)
    center = torch.zeros(1, k)
    for step in range(2):
        student = [torch.randn(b, k) for _ in range(3)]  # 2 global + 1 local
        teacher = [torch.randn(b, k) * 2 for _ in range(2)]
        loss = loss_fn(student, teacher, teacher_temp=0.05)
        # manual loop over (i, v != i): pairs (0,1), (0,2), (1,0), (1,2)
        assert close(loss, _dino_manual(student, teacher, center, 0.1, 0.05))
        # including v == i would give a different number
        full = sum((-(F.softmax((t - center) / 0.05, -1) * F.log_softmax(s / 0.1, -1)).sum(-1)).mean()
                   for t in teacher for s in student) / 6
        assert abs(float(loss) - float(full)) > 1e-3
        center = m * center + (1 - m) * torch.cat(teacher).mean(0, keepdim=True)
        assert torch.allclose(loss_fn.center, center, atol=1e-7), step


def test_dino_gradient_only_to_student_and_eval_keeps_centre():
    torch.manual_seed(2)
    s = [torch.randn(3, 5, requires_grad=True) for _ in range(2)]
    t = [torch.randn(3, 5, requires_grad=True)]
    loss_fn = DINOLoss(5)
    loss_fn(s, t, 0.04).backward()
    assert t[0].grad is None and s[1].grad is not None
    # student view 0 only pairs with teacher view 0: excluded, so it gets no gradient at all
    assert s[0].grad is None or torch.count_nonzero(s[0].grad) == 0
    before = loss_fn.center.clone()
    loss_fn.eval()
    loss_fn(s, t, 0.04)
    assert torch.equal(loss_fn.center, before)


def test_dino_helpers_match_forward_parts():
    torch.manual_seed(3)
    s = [torch.randn(4, 8) for _ in range(3)]
    t = [torch.randn(4, 8) for _ in range(2)]
    loss_fn = DINOLoss(8)
    ent = loss_fn.teacher_entropy(t, 0.07)
    kl = loss_fn.kl(s, t, 0.07)
    assert torch.equal(loss_fn.center, torch.zeros(1, 8))  # helpers do not touch the centre
    _, parts = loss_fn.forward_parts(s, t, 0.07)
    assert close(ent, parts["teacher_entropy"]) and close(kl, parts["kl"])
    # KL computed directly
    direct = 0.0
    pairs = [(i, v) for i in range(2) for v in range(3) if v != i]
    for i, v in pairs:
        p = F.softmax(t[i] / 0.07, -1)
        direct += (p * (p.log() - F.log_softmax(s[v] / 0.1, -1))).sum(-1).mean() / len(pairs)
    assert close(kl, direct, rel=1e-4)


def test_dino_rejects_no_pairs():
    with pytest.raises(ValueError):
        DINOLoss(3)([torch.randn(2, 3)], [torch.randn(2, 3)], 0.04)


# --------------------------------------------------------------------------------------- toy KL loss

def test_kl_consistency_identical_and_constant_outputs_are_zero():
    a = torch.randn(6, 4)
    loss_fn = KLConsistencyLoss()
    assert abs(float(loss_fn(a, a.clone()))) < 1e-7
    const = torch.ones(6, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])  # collapsed encoder: same output for all
    assert abs(float(loss_fn(const, const))) < 1e-7


def test_kl_consistency_hand_computed_two_classes():
    a = torch.tensor([[0.0, 0.0]])  # p_a = [1/2, 1/2]
    b = torch.tensor([[0.0, math.log(3.0)]])  # p_b = [1/4, 3/4]
    kl_ab = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kl_ba = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    loss, parts = KLConsistencyLoss().forward_parts(a, b)
    assert close(loss, 0.5 * (kl_ab + kl_ba))
    assert close(parts["kl_ab"], kl_ab) and close(parts["kl_ba"], kl_ba)
    # temperature divides the logits
    assert close(KLConsistencyLoss(temperature=2.0)(2 * a, 2 * b), loss)


# ----------------------------------------------------------------------------------- SIGReg / LeJEPA

def _expected_statistic(t_max=3.0, num_points=17):
    """E[T] under an exact N(0, 1) sample: E|phi_hat - phi|^2 = (1 - exp(-t^2)) / N."""
    t, _, w = epps_pulley_quadrature(t_max, num_points)
    return float((w * (1 - torch.exp(-t.square()))).sum())


def test_epps_pulley_expected_value_under_standard_normal():
    # closed form of the integral: sqrt(2 pi) erf(3/sqrt 2) - sqrt(2 pi / 3) erf(3 sqrt(3/2)) = 1.0527
    exact = (math.sqrt(2 * math.pi) * math.erf(3 / math.sqrt(2))
             - math.sqrt(2 * math.pi / 3) * math.erf(3 * math.sqrt(1.5)))
    assert abs(_expected_statistic() - exact) < 1e-3
    g = torch.Generator().manual_seed(0)
    # one large sample: mean over 64 directions, std of that mean ~0.11 (measured)
    z = torch.randn(20000, 64, generator=g)
    value = float(SIGReg(num_directions=256)(z, generator=torch.Generator().manual_seed(1)))
    assert 0.8 < value < 1.4
    # average of 20 x 64 independent columns: std ~0.03, so within 0.1 of 1.0525
    cols = torch.cat([epps_pulley(torch.randn(2000, 64, generator=g)) for _ in range(20)])
    assert abs(float(cols.mean()) - _expected_statistic()) < 0.1


def _direct_statistic(x: np.ndarray, t_max=3.0, num_points=2001) -> float:
    t = np.linspace(-t_max, t_max, num_points)
    ecf = np.exp(1j * np.outer(t, x)).mean(axis=1)
    integrand = np.abs(ecf - np.exp(-t**2 / 2)) ** 2 * np.exp(-t**2 / 2)
    return len(x) * float(np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(t)))


@pytest.mark.parametrize("kind", ["normal", "uniform", "shifted", "exponential"])
def test_epps_pulley_matches_direct_integration(kind):
    rng = np.random.default_rng(0)
    x = {"normal": rng.standard_normal(60), "uniform": rng.uniform(-1, 1, 80),
         "shifted": 0.5 * rng.standard_normal(100) + 0.7, "exponential": rng.exponential(1.0, 100)}[kind]
    ours = float(epps_pulley(torch.tensor(x, dtype=torch.float32)[:, None])[0])
    assert ours == pytest.approx(_direct_statistic(x), rel=0.01)


def test_epps_pulley_zeros_hand_checked():
    # x = 0: phi_hat = 1, so err(t) = (1 - exp(-t^2/2))^2 and T = N * int (1 - e^{-t^2/2})^2 e^{-t^2/2} dt
    n = 1000
    t = np.linspace(-3, 3, 33)  # the symmetric grid the doubled 17-point rule stands for
    f = (1 - np.exp(-t**2 / 2)) ** 2 * np.exp(-t**2 / 2)
    trapezoid = n * float(np.sum((f[1:] + f[:-1]) / 2 * np.diff(t)))
    value = epps_pulley(torch.zeros(n, 3))
    assert torch.allclose(value, torch.full((3,), trapezoid), rtol=1e-5)
    assert float(value[0]) > 100  # collapse is loud
    assert float(value[0]) == pytest.approx(_direct_statistic(np.zeros(n)), rel=0.01)


def test_sigreg_constant_is_large_and_directions_follow_generator():
    assert float(SIGReg(64)(torch.full((500, 16), 0.3))) > 100
    z = torch.randn(300, 16)
    a = SIGReg(32)(z, torch.Generator().manual_seed(5))
    b = SIGReg(32)(z, torch.Generator().manual_seed(5))
    c = SIGReg(32)(z, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # SIGReg = mean over directions of epps_pulley of the projections onto unit directions
    g = torch.Generator().manual_seed(5)
    dirs = torch.randn(16, 32, generator=g)
    dirs = dirs / dirs.norm(dim=0)
    assert close(a, epps_pulley(z @ dirs).mean())


def test_lejepa_terms():
    torch.manual_seed(4)
    z = torch.randn(64, 8)
    loss_fn = LeJEPALoss(lam=0.05, num_directions=32)
    terms = loss_fn.terms([z, z.clone()], generator=torch.Generator().manual_seed(0))
    assert float(terms["invariance"]) == 0.0
    sig = SIGReg(32)(z, torch.Generator().manual_seed(0))
    assert close(terms["sigreg"], 0.05 * sig)  # weighted terms
    assert close(loss_fn([z, z.clone()], generator=torch.Generator().manual_seed(0)), 0.05 * sig)
    # hand invariance: two views -> z_bar - z_v = +-(z1 - z2)/2
    z1, z2, z3 = torch.randn(3, 10, 4).unbind(0)
    terms = loss_fn.terms([z1, z2], generator=torch.Generator().manual_seed(0))
    assert close(terms["invariance"], 0.95 * ((z1 - z2) / 2).square().mean())
    zbar = (z1 + z2 + z3) / 3
    sq = [(zbar - z).square() for z in (z1, z2, z3)]
    all_views = LeJEPALoss(lam=0.05, num_directions=32, center="all")
    assert close(all_views.terms([z1, z2, z3])["invariance"], 0.95 * sum(q.mean() for q in sq) / 3)
    # three global views: both centres are the same
    assert close(loss_fn.terms([z1, z2, z3])["invariance"], all_views.terms([z1, z2, z3])["invariance"])
    summed = LeJEPALoss(lam=0.0, num_directions=32, invariance_reduction="sum", center="all").terms([z1, z2, z3])
    assert close(summed["invariance"], sum(q.sum(1).mean() for q in sq) / 3)


def test_lejepa_invariance_pulls_every_view_to_the_mean_of_the_global_views():
    # the paper's form: with 2 global and 1 local view the centre is (z1 + z2) / 2, and the local
    # view z3 is pulled towards it; the "all" variant lets the local view move the centre
    z1 = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    z2 = torch.tensor([[2.0, 0.0], [2.0, 2.0]])
    z3 = torch.tensor([[4.0, 4.0], [0.0, 0.0]])
    centre = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    # squared distances per (view, sample), summed over the 2 features:
    # z1: (1, 1); z2: (1, 1); z3: (9 + 16, 4 + 1) -> mean over views, samples and features
    hand = (1 + 1 + 1 + 1 + 25 + 5) / (3 * 2 * 2)
    loss_fn = LeJEPALoss(lam=0.0, num_directions=4)
    assert close(loss_fn.terms([z1, z2, z3], num_global=2)["invariance"], hand)
    assert close(((centre - torch.stack([z1, z2, z3])) ** 2).mean(), hand)
    mean_all = (z1 + z2 + z3) / 3
    hand_all = ((mean_all - torch.stack([z1, z2, z3])) ** 2).mean()
    assert close(LeJEPALoss(lam=0.0, num_directions=4, center="all").terms([z1, z2, z3], num_global=2)["invariance"],
                 hand_all)
    assert not close(hand_all, hand)
    with pytest.raises(ValueError, match="num_global"):
        loss_fn.terms([z1, z2, z3], num_global=4)
    with pytest.raises(ValueError, match="center"):
        LeJEPALoss(center="local")


# --------------------------------------------------------------------------------------------- VICReg

def test_vicreg_zero_terms():
    torch.manual_seed(5)
    x = torch.randn(32, 6)
    x = 2 * (x - x.mean(0)) / x.std(0)  # std exactly 2 > 1 in every column
    assert float(variance_loss(x)) == 0.0
    assert float(covariance_loss(WHITE)) == 0.0  # decorrelated columns
    terms = VICRegLoss().terms(x, x.clone())
    assert float(terms["sim"]) == 0.0 and float(terms["var"]) == 0.0
    assert float(VICRegLoss()(WHITE, WHITE.clone())) == 0.0  # std sqrt(4/3) > 1, whitened


def test_vicreg_hand_computed_2x2():
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # Var = 2 per column, C = [[2, 2], [2, 2]]
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # Var = (0, 0.5), C off-diagonal = 0
    sim = (1 + 0 + 1 + 1) / 4
    var_x = 0.0
    var_y = ((1 - math.sqrt(0 + 1e-4)) + (1 - math.sqrt(0.5 + 1e-4))) / 2
    cov_x, cov_y = (2 * 2**2) / 2, 0.0
    terms = VICRegLoss().terms(x, y)  # weighted: 25, 25, 1
    assert close(terms["sim"], 25 * sim) and close(terms["var"], 25 * (var_x + var_y) / 2)
    assert close(terms["cov"], cov_x + cov_y)
    assert close(VICRegLoss()(x, y), 25 * sim + 25 * (var_x + var_y) / 2 + 1 * (cov_x + cov_y))
    assert close(variance_loss(y), var_y) and close(covariance_loss(x), cov_x)
    # weights are honoured
    assert close(VICRegLoss(1.0, 2.0, 3.0)(x, y), sim + 2 * (var_x + var_y) / 2 + 3 * (cov_x + cov_y))


def test_vicreg_functions_flatten_tokens():
    z = torch.randn(4, 5, 3)
    assert close(variance_loss(z), variance_loss(z.reshape(20, 3)))
    assert close(covariance_loss(z), covariance_loss(z.reshape(20, 3)))


# ---------------------------------------------------------------------------------------- Barlow Twins

def test_barlow_identical_whitened_inputs_give_zero():
    loss, parts = BarlowTwinsLoss().forward_parts(WHITE, WHITE.clone())
    assert float(loss) < 1e-8 and float(parts["off_diag"]) < 1e-12


def test_barlow_hand_computed_off_diagonal():
    a, b = HADAMARD[:, 1], HADAMARD[:, 2]  # centred, orthogonal, biased variance 1
    mixed = (a + b) / math.sqrt(2)  # also centred with biased variance 1
    z1 = torch.stack([a, b], dim=1)
    z2 = torch.stack([a, mixed], dim=1)
    s = 1 / (1 + 1e-5)  # each branch is divided by sqrt(1 + eps)
    # c = [[1, 1/sqrt2], [0, 1/sqrt2]] * s
    c = BarlowTwinsLoss().cross_correlation(z1, z2)
    assert torch.allclose(c, s * torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]), atol=1e-6)
    on = (1 - s) ** 2 + (1 - s / math.sqrt(2)) ** 2
    off = (s / math.sqrt(2)) ** 2
    loss, parts = BarlowTwinsLoss(lambd=0.1).forward_parts(z1, z2)
    assert close(parts["on_diag"], on) and close(parts["off_diag"], off)
    assert close(loss, on + 0.1 * off)


def test_barlow_matches_batchnorm_reference():
    torch.manual_seed(6)
    z1, z2 = torch.randn(16, 5) * 3 + 1, torch.randn(16, 5)
    bn = torch.nn.BatchNorm1d(5, affine=False)
    c = bn(z1).T @ bn(z2) / 16
    off = c - torch.diag(torch.diagonal(c))
    expected = (1 - torch.diagonal(c)).square().sum() + 0.0051 * off.square().sum()
    assert close(BarlowTwinsLoss()(z1, z2), expected)


# --------------------------------------------------------------------------------------------- NT-Xent

@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_ntxent_matches_double_loop(tau):
    torch.manual_seed(7)
    b = 5
    z1, z2 = torch.randn(b, 4), torch.randn(b, 4)
    z = torch.cat([z1, z2]).tolist()

    def cos(u, v):
        return sum(p * q for p, q in zip(u, v)) / math.sqrt(sum(p * p for p in u) * sum(q * q for q in v))

    total = 0.0
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        denominator = sum(math.exp(cos(z[i], z[k]) / tau) for k in range(2 * b) if k != i)
        total += -math.log(math.exp(cos(z[i], z[j]) / tau) / denominator)
    loss, parts = NTXentLoss(tau).forward_parts(z1, z2)
    assert close(loss, total / (2 * b), rel=1e-5)
    assert close(parts["positive_similarity"], sum(cos(z[i], z[i + b]) for i in range(b)) / b, rel=1e-5)


def test_ntxent_perfect_pairs_score_top1():
    z = torch.eye(4) * 3
    _, parts = NTXentLoss(0.1).forward_parts(z, z.clone())
    assert float(parts["top1"]) == 1.0 and close(parts["positive_similarity"], 1.0)


# ------------------------------------------------------------------------------------------------ MAE

def test_patchify_hand_layout_and_round_trip():
    img = torch.arange(8.0).reshape(1, 1, 2, 4)  # [[0 1 2 3], [4 5 6 7]], two 2x2 patches
    patches = patchify(img, 2)
    assert patches.tolist() == [[[0, 1, 4, 5], [2, 3, 6, 7]]]
    rgb = torch.arange(2 * 2 * 2 * 3.0).reshape(1, 3, 2, 4)  # (p, p, C) order inside a patch
    assert patchify(rgb, 2)[0, 0, :3].tolist() == rgb[0, :, 0, 0].tolist()
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(unpatchify(patchify(x, 4), 4, 3), x)
    y = torch.randn(2, 3, 8, 12)
    assert torch.equal(unpatchify(patchify(y, 4), 4, 3, grid=(2, 3)), y)
    p = torch.randn(2, 16, 27)
    assert torch.equal(patchify(unpatchify(p, 3, 3), 3), p)


def test_patch_order_matches_vit_patch_embed():
    p, c = 4, 3
    embed = PatchEmbed(p, c, p * p * c)
    with torch.no_grad():  # output channel k = ((row * p) + col) * C + channel copies that pixel
        embed.proj.weight.zero_()
        embed.proj.bias.zero_()
        for r in range(p):
            for col in range(p):
                for ch in range(c):
                    embed.proj.weight[(r * p + col) * c + ch, ch, r, col] = 1.0
    x = torch.randn(2, c, 16, 12)
    assert torch.allclose(embed(x), patchify(x, p), atol=1e-6)


def test_patch_reconstruction_counts_the_given_patches_only_and_hand_value():
    img = torch.arange(8.0).reshape(1, 1, 2, 4)  # patches (2 x 2): [0, 1, 4, 5] and [2, 3, 6, 7]
    loss_fn = PatchReconstructionLoss(norm_pix=False)
    hidden = torch.tensor([[1]])  # predict the second patch only
    assert close(loss_fn(torch.zeros(1, 1, 4), img, 2, hidden), (4 + 9 + 36 + 49) / 4)
    # two images, hidden patches (0, 1) and (1, 0): the mean over every predicted value
    imgs = torch.arange(16.0).reshape(2, 1, 2, 4)
    per_patch = patchify(imgs, 2).square().mean(-1)
    expected = (per_patch[0, 0] + per_patch[0, 1] + per_patch[1, 1] + per_patch[1, 0]) / 4
    assert close(loss_fn(torch.zeros(2, 2, 4), imgs, 2, torch.tensor([[0, 1], [1, 0]])), expected)
    # prediction rows follow the indices: row k is compared with patch indices[b, k]
    target = patchify(imgs, 2)
    swapped = torch.stack([target[0], target[1].flip(0)])
    assert float(loss_fn(swapped, imgs, 2, torch.tensor([[0, 1], [1, 0]]))) == 0.0
    with pytest.raises(ValueError, match="pred has shape"):
        loss_fn(torch.zeros(2, 3, 4), imgs, 2, torch.tensor([[0, 1], [1, 0]]))


def test_patch_reconstruction_norm_pix_target():
    torch.manual_seed(8)
    imgs = torch.randn(2, 3, 8, 8) * 2 + 1
    hidden = torch.tensor([[0, 2, 3], [1, 2, 3]])
    pred = torch.randn(2, 3, 48)
    target = patchify(imgs, 4).numpy()
    target = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, ddof=1, keepdims=True) + 1e-6)
    picked = np.stack([target[b, hidden[b].numpy()] for b in range(2)])
    expected = ((pred.numpy() - picked) ** 2).mean()
    assert close(PatchReconstructionLoss()(pred, imgs, 4, hidden), expected, rel=1e-5)


def test_patch_reconstruction_of_every_patch_is_the_image_mse():
    torch.manual_seed(9)
    imgs = torch.randn(2, 3, 8, 8)
    pred = torch.randn(2, 4, 48)
    assert close(PatchReconstructionLoss(norm_pix=False)(pred, imgs, 4), F.mse_loss(unpatchify(pred, 4, 3), imgs))
    every = torch.arange(4).expand(2, -1)
    assert close(PatchReconstructionLoss()(pred, imgs, 4), PatchReconstructionLoss()(pred, imgs, 4, every))


def test_latent_prediction_loss_and_targets_by_hand():
    # smooth L1 with beta = 1: 0.5 u^2 below 1, |u| - 0.5 above
    pred = torch.tensor([[[0.0, 0.0], [3.0, 0.5]]])
    target = torch.tensor([[[0.5, -2.0], [1.0, 0.5]]], requires_grad=True)
    hand = (0.5 * 0.25 + 1.5 + 1.5 + 0.0) / 4
    loss = LatentPredictionLoss()(pred, target)
    assert close(loss, hand)
    assert not loss.requires_grad  # no gradient flows into the targets
    # layer norm without affine: zero mean, unit (biased) variance per token
    t = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])
    np.testing.assert_allclose(layer_normalised(t)[0, 0].numpy(), [-1.0, 1.0], atol=1e-3)
    # data2vec's average: instance norm over tokens per layer, mean over layers, then layer norm
    a = torch.tensor([[[0.0, 1.0], [2.0, 5.0]]])   # per feature over the 2 tokens: (-1, 1), (-1, 1)
    b = torch.tensor([[[4.0, 0.0], [0.0, 0.0]]])   # (1, -1), (0, 0)
    # tokens after the mean over layers: (0, -0.5) and (0, 0.5); layer-normalised: (1, -1) and (-1, 1)
    avg = top_k_average([a, b])
    np.testing.assert_allclose(avg[0].numpy(), [[1.0, -1.0], [-1.0, 1.0]], atol=1e-3)


# ------------------------------------------------------------------------------- float32 under autocast

def test_losses_compute_in_float32_under_bf16_autocast():
    torch.manual_seed(10)
    x, y = torch.randn(16, 8), torch.randn(16, 8)
    imgs, pred, hidden = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 48), torch.tensor([[0, 3], [1, 2]])
    cases = {
        "vicreg": lambda a, b: VICRegLoss()(a, b),
        "barlow": lambda a, b: BarlowTwinsLoss()(a, b),
        "ntxent": lambda a, b: NTXentLoss()(a, b),
        "kl": lambda a, b: KLConsistencyLoss()(a, b),
        "lejepa": lambda a, b: LeJEPALoss(num_directions=16)([a, b], torch.Generator().manual_seed(0)),
        "dino": lambda a, b: DINOLoss(8)([a, b], [a], 0.04),
        "mae": lambda a, b: PatchReconstructionLoss()(pred, imgs, 4, hidden),
    }
    for name, fn in cases.items():
        plain = fn(x, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = fn(x, y)
            low = fn(x.bfloat16(), y.bfloat16())  # bf16 inputs are upcast, the result is float32
        assert auto.dtype == torch.float32 and low.dtype == torch.float32, name
        assert torch.equal(auto, plain), name
        assert torch.isfinite(low), name
