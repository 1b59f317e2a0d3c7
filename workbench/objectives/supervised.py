"""Supervised cross-entropy from one or more layers: the baseline, and deep supervision."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ObjectiveConfig
from . import params as check
from .base import BuildContext, Objective, ObjectiveOutput, StepInputs


class LinearHead(nn.Module):
    """LayerNorm then a linear classifier. Without the norm, a head on an intermediate layer would
    see the raw residual stream, whose scale grows with depth."""

    def __init__(self, width: int, num_classes: int, normalise: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(width) if normalise else nn.Identity()
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class SupervisedObjective(Objective):
    """Cross-entropy of a linear head on the pooled representation of each target layer.

    With ``layers: last`` this is the usual ViT classifier (the head reads the backbone's own final
    norm). With several layers, each gets its own head: deep supervision. Terms are named ``ce``
    for a single layer and ``ce_l<k>`` per layer otherwise; metrics ``acc`` / ``acc_l<k>``.

    Params:
        pool: ``"cls"`` or ``"mean"``; ``None`` uses the model's pooling.
        label_smoothing: as in ``nn.CrossEntropyLoss``.
    """

    defaults = {"pool": None, "label_smoothing": 0.0}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.number(name, self.params, "label_smoothing", lambda x: 0 <= x < 1, "a number in [0, 1)")
        self.pool = check.pool(name, self.params) or context.pool
        self.heads = nn.ModuleDict(
            {str(layer): LinearHead(context.width, context.num_classes, normalise=layer != context.depth)
             for layer in self.layers}
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(self.params["label_smoothing"]))

    def logits(self, inputs: StepInputs) -> dict[int, torch.Tensor]:
        out = inputs.student["clean"]
        return {layer: self.heads[str(layer)](out.pooled(layer, self.pool)) for layer in self.layers}

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        labels = inputs.batch["labels"]
        single = len(self.layers) == 1
        terms, metrics = {}, {}
        for layer, logits in self.logits(inputs).items():
            suffix = "" if single else f"_l{layer}"
            terms[f"ce{suffix}"] = self.criterion(logits.float(), labels)
            metrics[f"acc{suffix}"] = (logits.argmax(dim=-1) == labels).float().mean()
        return ObjectiveOutput(terms, metrics)
