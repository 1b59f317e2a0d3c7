"""I-JEPA: predict the EMA teacher's representation of target blocks from a context block."""

from __future__ import annotations

import torch

from ..config import ObjectiveConfig
from ..errors import ConfigError
from ..losses import LatentPredictionLoss, layer_normalised
from ..masks import BlockMaskSpec, block_mask_sizes, block_masks
from . import params as check
from .base import BuildContext, Mask, Needs, Objective, ObjectiveOutput, StepInputs
from .heads import MaskedPredictor, gather_tokens


class IJEPAObjective(Objective):
    """I-JEPA (Assran et al. 2023). The student encodes only the context block's patches; a narrow
    predictor, given the context tokens and mask tokens at one target block's positions, predicts
    the teacher's layer-normalised (no affine) last-layer tokens there; loss: smooth L1, averaged
    over the target blocks. Masks use the paper's values (4 targets, scale 0.15-0.2, aspect
    0.75-1.5; context scale 0.85-1.0 minus the targets).

    Params: num_targets, target_scale, target_aspect, context_scale, min_keep, predictor_width,
    predictor_depth.
    """

    defaults = {
        "num_targets": 4, "target_scale": [0.15, 0.2], "target_aspect": [0.75, 1.5],
        "context_scale": [0.85, 1.0], "min_keep": 4, "predictor_width": 64, "predictor_depth": 2,
    }

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        check.positive_int(name, p, "num_targets")
        check.positive_int(name, p, "min_keep")
        check.predictor(name, p, "predictor_width", "predictor_depth")
        n = context.grid**2
        smallest_target = max(1, int(p["target_scale"][0] * n))
        if context.grid < 2 or n - p["num_targets"] * smallest_target < p["min_keep"]:
            raise ConfigError(
                f"objectives.{name}.params.num_targets", p["num_targets"],
                f"target blocks that leave at least min_keep={p['min_keep']} context patches on the "
                f"{context.grid} x {context.grid} patch grid (use fewer targets, smaller target_scale or "
                f"a smaller model.patch_size)",
            )
        # The mask sizes are fixed by the parameters (so a step never reads counts back from the
        # device); plan them now, once, rather than inside the first training step.
        try:
            self.mask_spec = BlockMaskSpec(num_targets=p["num_targets"], target_scale=p["target_scale"],
                                           target_aspect=p["target_aspect"], context_scale=p["context_scale"],
                                           min_keep=p["min_keep"])
            block_mask_sizes(context.grid, self.mask_spec)
        except ValueError as exc:
            raise ConfigError(f"objectives.{name}.params", p, str(exc)) from None
        self.predictor = MaskedPredictor(context.width, context.width, context.grid, p["predictor_width"],
                                         p["predictor_depth"])
        self.criterion = LatentPredictionLoss()

    @property
    def needs(self) -> Needs:
        return Needs(views=(), teacher_views=("clean",), masked="clean")

    def make_mask(self, batch_size: int, inputs: StepInputs) -> Mask:
        context, targets = block_masks(batch_size, self.context.grid, inputs.sample_generator,
                                       inputs.views["clean"].device, spec=self.mask_spec)
        return Mask(keep=context, targets=targets)

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        layer = self.layers[-1]
        student = inputs.student[f"masked:{self.name}"].patches(layer)
        mask = inputs.masks[self.name]
        with torch.no_grad():
            teacher = inputs.teacher["clean"]
            target_tokens = layer_normalised(teacher.layers[layer][:, teacher.num_prefix:])
        b, t, q = mask.targets.shape
        # one prediction per target block: the context is repeated for each block
        context = student.repeat_interleave(t, dim=0)
        keep = mask.keep.repeat_interleave(t, dim=0)
        queries = mask.targets.reshape(b * t, q)
        pred = self.predictor(context, keep, queries)
        target = gather_tokens(target_tokens.repeat_interleave(t, dim=0), queries)
        return ObjectiveOutput({"l1": self.criterion(pred, target)})
