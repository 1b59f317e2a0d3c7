"""The shared optimiser: parameter groups and the learning-rate schedule, against hand values."""

import math
from types import SimpleNamespace

import pytest
import torch

from workbench.training.optim import build_optimiser


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)  # weight decays, bias does not
        self.norm = torch.nn.LayerNorm(4)  # neither decays (1-D)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, 5, 4))  # 3-D, but named: no decay
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)  # not trained at all


OPTIM = SimpleNamespace(lr=1e-3, betas=[0.9, 0.95], weight_decay=0.05, warmup_fraction=0.2, min_lr_ratio=0.1)


def test_weight_decay_only_on_matrices_not_named_and_frozen_parameters_left_out():
    model = Tiny()
    optimiser, _ = build_optimiser(OPTIM, model.named_parameters(), {"pos_embed"}, 10, torch.device("cpu"))
    decay, no_decay = optimiser.param_groups
    assert [p is model.proj.weight for p in decay["params"]] == [True]
    assert {id(p) for p in no_decay["params"]} == {id(model.proj.bias), id(model.norm.weight), id(model.norm.bias),
                                                  id(model.pos_embed)}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    assert optimiser.defaults["betas"] == (0.9, 0.95) and not optimiser.defaults["fused"]


def test_learning_rate_warms_up_linearly_then_follows_the_cosine_to_the_floor():
    model = Tiny()
    optimiser, scheduler = build_optimiser(OPTIM, model.named_parameters(), set(), 10, torch.device("cpu"))
    lrs = []
    for _ in range(11):
        lrs.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    # warm-up over int(0.2 * 10) = 2 steps: lr * 1/2, lr * 2/2; then, at step s in 2..10,
    # lr * (0.1 + 0.45 * (1 + cos(pi * (s - 2) / 8)))
    expected = [0.5e-3, 1e-3] + [1e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi * (s - 2) / 8))) for s in range(2, 11)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[2] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
