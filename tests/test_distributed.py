"""Two CPU processes (gloo) give exactly the single-process losses, centre and gradients.

Each rank holds half of a fixed batch. For every loss we check, on every rank:

* the loss value (and DINO's updated centre, and metrics) equals the single-process value on the
  concatenated batch: ``rtol = 1e-5``, ``atol = 1e-6`` (float32, different summation order);
* gradient convention (see :mod:`workbench.distributed`): the gradient with respect to a rank's own
  inputs is ``world_size`` times the single-process gradient of that slice, so that DDP's average
  over ranks gives the single-process parameter gradient: ``rtol = 1e-4`` elementwise plus
  ``atol = 1e-5 * max |reference gradient|`` (for entries that are sums of cancelling terms);
* the same end to end with a real ``DistributedDataParallel`` linear encoder: the (DDP-averaged)
  parameter gradients equal the single-process ones (same gradient tolerance).

The workers never hang: ``init_process_group`` has a 60 s timeout and the parent kills them after
``DEADLINE`` seconds.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from spawned import free_port, run_spawned
from torch import nn

WORLD = 2
BATCH = 8  # global batch; 4 per rank
DEADLINE = 90.0
LOSS_TOL = dict(rtol=1e-5, atol=1e-6)


def _grad_close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Elementwise rtol 1e-4, atol 1e-5 x the largest reference entry (entries that nearly cancel)."""
    return torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()) + 1e-8)


# ------------------------------------------------------------------------------------------ cases
# A case: (inputs: name -> tensor with the batch on dim 0, names that get gradients, fn(inputs) -> outputs)

def _cases() -> dict:
    from workbench import losses as L

    g = torch.Generator().manual_seed(1234)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    k, d = 12, 6
    cases = {}

    dino_in = {f"s{s}_{v}": randn(BATCH, k) for s in range(2) for v in range(4)}  # 2 steps, 2 global + 2 local
    dino_in.update({f"t{s}_{v}": randn(BATCH, k, scale=2.0) for s in range(2) for v in range(2)})

    def dino(x):
        loss_fn = L.DINOLoss(k, student_temp=0.1, center_momentum=0.9)
        out = {}
        total = 0.0
        for step in range(2):
            loss, parts = loss_fn.forward_parts([x[f"s{step}_{v}"] for v in range(4)],
                                                [x[f"t{step}_{v}"] for v in range(2)], teacher_temp=0.05)
            total = total + loss
            out[f"loss{step}"] = loss
            out[f"center{step}"] = loss_fn.center.clone()
            out[f"entropy{step}"], out[f"kl{step}"] = parts["teacher_entropy"], parts["kl"]
        out["loss"] = total
        return out

    cases["dino"] = (dino_in, [n for n in dino_in if n.startswith("s")], dino)

    def sigreg(x):
        return {"loss": L.SIGReg(num_directions=16)(x["z"], torch.Generator().manual_seed(7))}

    cases["sigreg"] = ({"z": randn(BATCH, d, scale=1.5) + 0.3}, ["z"], sigreg)

    def lejepa(x):  # two global views and one local view
        terms = L.LeJEPALoss(lam=0.3, num_directions=16).terms(
            [x["v0"], x["v1"], x["v2"]], num_global=2, generator=torch.Generator().manual_seed(7))
        return {"loss": sum(terms.values()), **terms}

    lejepa_in = {f"v{v}": randn(BATCH, d) for v in range(3)}
    cases["lejepa"] = (lejepa_in, list(lejepa_in), lejepa)

    def vicreg(x):
        terms = L.VICRegLoss().terms(x["a"], x["b"])
        return {"loss": sum(terms.values()), **terms}

    cases["vicreg"] = ({"a": randn(BATCH, d, scale=0.5), "b": randn(BATCH, d)}, ["a", "b"], vicreg)

    def barlow(x):
        loss, parts = L.BarlowTwinsLoss(lambd=0.02).forward_parts(x["a"], x["b"])
        return {"loss": loss, **parts}

    a = randn(BATCH, d)
    cases["barlow"] = ({"a": a, "b": a + randn(BATCH, d, scale=0.3)}, ["a", "b"], barlow)

    def ntxent(x):
        loss, parts = L.NTXentLoss(temperature=0.5).forward_parts(x["a"], x["b"])
        return {"loss": loss, **parts}

    cases["ntxent"] = ({"a": randn(BATCH, d), "b": randn(BATCH, d)}, ["a", "b"], ntxent)

    def consistency(x):
        return {"loss": L.KLConsistencyLoss()(x["a"], x["b"])}

    cases["kl"] = ({"a": randn(BATCH, k), "b": randn(BATCH, k)}, ["a", "b"], consistency)

    hidden = torch.rand(BATCH, 4, generator=g).argsort(dim=1)[:, :3]  # 3 of the 4 patches, per image
    mae_in = {"pred": randn(BATCH, 3, 12), "images": randn(BATCH, 3, 4, 4), "hidden": hidden}

    def mae(x):
        return {"loss": L.PatchReconstructionLoss(norm_pix=True)(x["pred"], x["images"], 2, x["hidden"])}

    cases["mae"] = (mae_in, ["pred"], mae)

    latent_in = {"pred": randn(BATCH, 3, d), "target": randn(BATCH, 3, d)}

    def latent(x):
        return {"loss": L.LatentPredictionLoss()(x["pred"], x["target"])}

    cases["latent"] = (latent_in, ["pred"], latent)
    return cases


def _evaluate(fn, inputs: dict, grad_names: list[str]):
    leaves = {n: (t.clone().requires_grad_(True) if n in grad_names else t.clone()) for n, t in inputs.items()}
    out = fn(leaves)
    out["loss"].backward()
    return {n: v.detach() for n, v in out.items()}, {n: leaves[n].grad for n in grad_names}


def _ddp_param_grads(fn, inputs: dict, grad_names: list[str], index, wrap):
    g = torch.Generator().manual_seed(99)
    raw = {n: torch.randn(inputs[n].shape[:-1] + (5,), generator=g)[index] for n in grad_names}
    encoder = nn.Linear(5, inputs[grad_names[0]].shape[-1])
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(encoder.weight.shape, generator=g))
        encoder.bias.copy_(torch.randn(encoder.bias.shape, generator=g))
    model = wrap(encoder)
    sizes = [raw[n].shape[0] for n in grad_names]
    encoded = model(torch.cat([raw[n] for n in grad_names])).split(sizes)  # one forward through DDP
    x = {n: t[index] for n, t in inputs.items()}
    x.update(dict(zip(grad_names, encoded)))
    fn(x)["loss"].backward()
    # one vector: the bias gradient is exactly 0 in theory for the shift-invariant losses (Barlow,
    # VICReg), so its float noise is judged on the scale of the whole gradient
    return torch.cat([encoder.weight.grad.flatten(), encoder.bias.grad.flatten()])


# ----------------------------------------------------------------------------------------- worker

def _worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    cases = _cases()
    everything = slice(None)
    reference = {name: _evaluate(fn, inputs, grads) for name, (inputs, grads, fn) in cases.items()}
    reference_params = {name: _ddp_param_grads(fn, inputs, grads, everything, lambda m: m)
                        for name, (inputs, grads, fn) in cases.items()}

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    try:
        from workbench import distributed as D
        assert D.is_distributed() and D.world_size() == WORLD and D.rank() == rank
        half = BATCH // WORLD
        mine = slice(rank * half, (rank + 1) * half)
        failures = []
        for name, (inputs, grads, fn) in cases.items():
            ref_out, ref_grads = reference[name]
            out, got_grads = _evaluate(fn, {n: t[mine] for n, t in inputs.items()}, grads)
            for key, value in ref_out.items():
                if not torch.allclose(out[key], value, **LOSS_TOL):
                    failures.append(f"{name}.{key}: rank {rank} {out[key].tolist()} != single {value.tolist()}")
            for key in grads:
                expected = WORLD * ref_grads[key][mine]
                if not _grad_close(got_grads[key], expected):
                    err = (got_grads[key] - expected).abs().max().item()
                    failures.append(f"{name}: grad {key} on rank {rank} differs from W x single (max err {err:.2e})")

            ddp = _ddp_param_grads(fn, inputs, grads, mine,
                                   lambda m: nn.parallel.DistributedDataParallel(m))
            if not _grad_close(ddp, reference_params[name]):
                err = (ddp - reference_params[name]).abs().max().item()
                failures.append(f"{name}: DDP parameter grads on rank {rank} != single process (max err {err:.2e})")

        # the helpers themselves: gather order, uneven sizes, gradient routing
        t = torch.arange(rank + 2, dtype=torch.float32).unsqueeze(1) + 10 * rank  # 2 rows on rank 0, 3 on rank 1
        t.requires_grad_(True)
        gathered = D.gather_with_grad(t)
        if gathered.squeeze(1).tolist() != [0.0, 1.0, 10.0, 11.0, 12.0]:
            failures.append(f"gather_with_grad order/sizes: {gathered.squeeze(1).tolist()}")
        (gathered.squeeze(1) * torch.arange(1.0, 6.0)).sum().backward()
        expected = torch.tensor([1.0, 2.0]) if rank == 0 else torch.tensor([3.0, 4.0, 5.0])
        if not torch.equal(t.grad.squeeze(1), WORLD * expected):
            failures.append(f"gather_with_grad backward on rank {rank}: {t.grad.squeeze(1).tolist()}")
        mean, count = D.global_batch_mean(t.detach())
        if abs(float(mean) - 34.0 / 5) > 1e-6 or float(count) != 5:
            failures.append(f"global_batch_mean: {float(mean)}, {float(count)}")
        # without a generator, SIGReg broadcasts rank 0's directions: all ranks agree
        from workbench.losses import SIGReg
        torch.manual_seed(rank)  # deliberately different global RNG streams
        value = SIGReg(num_directions=8)(torch.randn(6, 4, generator=torch.Generator().manual_seed(rank)))
        values = [torch.zeros(1) for _ in range(WORLD)]
        dist.all_gather(values, value.detach().reshape(1))
        if not torch.equal(values[0], values[1]):
            failures.append(f"SIGReg without generator differs across ranks: {[float(v) for v in values]}")
        if failures:
            raise AssertionError("\n".join(failures))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_process_losses_match_single_process():
    run_spawned(_worker, (free_port(),), WORLD, DEADLINE, "distributed workers")


def test_helpers_are_noops_on_a_single_process():
    from workbench import distributed as D

    assert not D.is_distributed() and D.world_size() == 1 and D.rank() == 0
    t = torch.randn(3, 2, requires_grad=True)
    assert D.all_reduce_sum(t) is t and D.all_reduce_mean(t) is t and D.gather_with_grad(t) is t
    mean, count = D.global_batch_mean(t)
    assert torch.equal(mean, t.mean(0)) and count == 3
    assert D.gather_sizes(3) == [3]


if __name__ == "__main__":  # pragma: no cover - manual run
    sys.exit(pytest.main([__file__, "-q"]))
