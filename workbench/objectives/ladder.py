"""The latent ladder: each chosen student layer predicts the EMA teacher's representation."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ObjectiveConfig
from ..errors import ConfigError
from ..losses import LatentPredictionLoss, layer_normalised, top_k_average
from ..masks import random_patch_mask
from . import params as check
from .base import BuildContext, Mask, Needs, Objective, ObjectiveOutput, StepInputs, check_mask_ratio
from .heads import MaskedPredictor, gather_tokens


class LatentLadderObjective(Objective):
    """Student layer l, on a masked view, predicts the teacher's tokens at the hidden patches.

    The teacher (EMA of the backbone) sees the clean view. ``target`` picks what layer l predicts:
    ``same`` (teacher layer l), ``next`` (teacher layer l + 1, the last layer predicting itself),
    or ``topk`` (data2vec: the average of the top ``k`` teacher layers, each instance-normalised
    over tokens, then layer-normalised). Targets are layer-normalised without affine parameters.
    A narrow :class:`MaskedPredictor` per layer maps visible tokens to predictions at hidden
    positions; loss: smooth L1. Terms: ``l1_l<k>`` per layer.

    Params: mask_ratio, target, k, predictor_width, predictor_depth.
    """

    schedulable = frozenset({"mask_ratio"})
    defaults = {"mask_ratio": 0.5, "target": "same", "k": 3, "predictor_width": 64, "predictor_depth": 1}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        check_mask_ratio(name, p["mask_ratio"])
        check.predictor(name, p, "predictor_width", "predictor_depth")
        check.choice(name, p, "target", ("same", "next", "topk"))
        if p["target"] == "topk" and (isinstance(p["k"], bool) or not isinstance(p["k"], int)
                                      or not 1 <= p["k"] <= context.depth):  # k is read only by topk
            raise ConfigError(f"objectives.{name}.params.k", p["k"], f"an integer in 1..{context.depth}")
        self.predictors = nn.ModuleDict({
            str(layer): MaskedPredictor(context.width, context.width, context.grid, p["predictor_width"],
                                        p["predictor_depth"])
            for layer in self.layers
        })
        self.criterion = LatentPredictionLoss()

    @property
    def needs(self) -> Needs:
        return Needs(views=(), teacher_views=("clean",), masked="clean")

    def make_mask(self, batch_size: int, inputs: StepInputs) -> Mask:
        keep, hidden_idx, hidden = random_patch_mask(batch_size, self.context.grid**2, float(self.hp("mask_ratio", inputs)),
                                                     generator=inputs.sample_generator, device=inputs.views["clean"].device)
        return Mask(keep=keep, targets=hidden_idx if hidden_idx.shape[1] else keep, hidden=hidden)

    def targets(self, teacher, layer: int) -> torch.Tensor:
        depth = self.context.depth
        if self.params["target"] == "topk":
            k = int(self.params["k"])
            return top_k_average([teacher.patches(l) for l in range(depth - k + 1, depth + 1)])
        return layer_normalised(teacher.patches(min(layer + (self.params["target"] == "next"), depth)))

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        student = inputs.student[f"masked:{self.name}"]
        teacher = inputs.teacher["clean"]
        mask = inputs.masks[self.name]
        terms = {}
        for layer in self.layers:
            target = gather_tokens(self.targets(teacher, layer), mask.targets)
            pred = self.predictors[str(layer)](student.patches(layer), mask.keep, mask.targets)
            terms[f"l1_l{layer}"] = self.criterion(pred, target)
        return ObjectiveOutput(terms)
