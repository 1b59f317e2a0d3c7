"""Data-space objectives: MAE, the step-wise pixel ladder, and full-image reconstruction."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ObjectiveConfig
from ..losses import PatchReconstructionLoss, patchify
from ..masks import random_patch_mask
from ..views import gaussian_blur
from . import params as check
from .base import BuildContext, Mask, Needs, Objective, ObjectiveOutput, StepInputs, check_mask_ratio
from .heads import MaskedPredictor, mlp


def coarsen(images: torch.Tensor, factor: float, kind: str) -> torch.Tensor:
    """A coarser version of ``images`` at the same size: an image-pyramid level (average-pool by
    ``factor`` then bilinear upsampling) or a Gaussian blur with sigma = factor / 2."""
    if factor <= 1.0:
        return images
    h, w = images.shape[-2:]
    if kind == "pyramid":
        small = F.interpolate(images, size=(max(1, round(h / factor)), max(1, round(w / factor))), mode="area")
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    sigma = factor / 2.0
    radius = min(math.ceil(3 * sigma), min(h, w) - 1)  # reflect padding needs radius < side
    generator = torch.Generator(device=images.device)  # p = 1 and one sigma: nothing random is used
    return gaussian_blur(images, p=1.0, sigma=(sigma, sigma), kernel_size=2 * radius + 1, generator=generator)


class PixelLadderObjective(Objective):
    """Step-wise reconstruction: a light decoder per chosen layer rebuilds the image at a level of
    detail that follows depth (LocalMIM's ladder of targets; InfoPro's reconstruction on early
    modules).

    The student sees the clean view with ``mask_ratio`` of its patches removed (MAE-style random
    masking; 0 keeps every patch). Each chosen layer's visible tokens go through its own
    :class:`MaskedPredictor`, which predicts the pixels of the hidden patches (all patches when
    nothing is hidden) of that layer's target. Targets run from the image itself (factor 1) to a
    version coarsened by ``coarsest`` (image pyramid or blur), spaced geometrically over the
    chosen layers; ``direction`` says whether the earliest layer gets the finest target
    (``fine_to_coarse``, as LocalMIM) or the coarsest (``coarse_to_fine``: blob, then lines, then
    figure). Terms: ``mse_l<k>`` per layer (``mse`` for a single layer).

    Params: mask_ratio, target (pyramid | blur), direction, coarsest, norm_pix, decoder_width,
    decoder_depth.
    """

    schedulable = frozenset({"mask_ratio"})
    defaults = {
        "mask_ratio": 0.5, "target": "pyramid", "direction": "fine_to_coarse", "coarsest": 8.0,
        "norm_pix": True, "decoder_width": 64, "decoder_depth": 1,
    }

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        check.choice(name, p, "target", ("pyramid", "blur"))
        check.choice(name, p, "direction", ("fine_to_coarse", "coarse_to_fine"))
        check_mask_ratio(name, p["mask_ratio"])
        check.number(name, p, "coarsest", lambda x: x >= 1, "a blur / downsampling factor >= 1 (1: the image itself)")
        check.choice(name, p, "norm_pix", (True, False), "true or false")
        check.predictor(name, p, "decoder_width", "decoder_depth")
        pixels = context.patch_size**2 * context.channels
        self.decoders = nn.ModuleDict({
            str(layer): MaskedPredictor(context.width, pixels, context.grid, p["decoder_width"], p["decoder_depth"])
            for layer in self.layers
        })
        n = len(self.layers)
        factors = [float(p["coarsest"]) ** (i / (n - 1)) if n > 1 else 1.0 for i in range(n)]
        if p["direction"] == "coarse_to_fine":
            factors = factors[::-1]
        self.factors = dict(zip(self.layers, factors))
        self.criterion = PatchReconstructionLoss(norm_pix=bool(p["norm_pix"]))

    @property
    def needs(self) -> Needs:
        return Needs(views=(), masked="clean")

    def make_mask(self, batch_size: int, inputs: StepInputs) -> Mask:
        n = self.context.grid**2
        ratio = float(self.hp("mask_ratio", inputs))
        keep, hidden_idx, hidden = random_patch_mask(batch_size, n, ratio, generator=inputs.sample_generator,
                                                     device=inputs.views["clean"].device)
        targets = hidden_idx if hidden_idx.shape[1] > 0 else keep
        return Mask(keep=keep, targets=targets, hidden=hidden)

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        out = inputs.student[f"masked:{self.name}"]
        mask = inputs.masks[self.name]
        images = inputs.views["clean"]
        single = len(self.layers) == 1
        terms = {}
        for layer in self.layers:
            coarse = coarsen(images, self.factors[layer], self.params["target"])
            pred = self.decoders[str(layer)](out.patches(layer), mask.keep, mask.targets)
            terms["mse" if single else f"mse_l{layer}"] = self.criterion(pred, coarse, self.context.patch_size, mask.targets)
        return ObjectiveOutput(terms)


class MAEObjective(PixelLadderObjective):
    """MAE (He et al. 2022): hide 75% of the patches, encode the visible ones only, and predict the
    hidden patches' per-patch normalised pixels with a light decoder; loss on hidden patches only.

    The pixel ladder with one layer (the last), the finest target and MAE's defaults.
    """

    defaults = {**PixelLadderObjective.defaults, "mask_ratio": 0.75, "coarsest": 1.0, "decoder_depth": 2}


class ReconstructionObjective(Objective):
    """Full-image reconstruction from the final representation: keeps the data space alive.

    ``source: pooled`` decodes the whole image from the pooled vector with an MLP (all pixel
    information must pass through one token); ``source: tokens`` decodes each patch from its own
    final token (a per-token linear map). Loss: mean squared error on the normalised clean image.
    Params: source, hidden.
    """

    defaults = {"source": "pooled", "hidden": 256}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        c = context
        check.positive_int(name, self.params, "hidden")
        check.choice(name, self.params, "source", ("pooled", "tokens"))
        if self.params["source"] == "pooled":
            self.decoder = mlp(c.width, self.params["hidden"], c.channels * c.image_size**2, layers=2)
        else:
            self.decoder = nn.Linear(c.width, c.patch_size**2 * c.channels)
        self.criterion = PatchReconstructionLoss(norm_pix=False)  # the normalised image itself

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        out = inputs.student["clean"]
        images = inputs.views["clean"].float()
        layer = self.layers[-1]
        p = self.context.patch_size
        if self.params["source"] == "pooled":
            pred = patchify(self.decoder(out.pooled(layer, self.context.pool)).view_as(images), p)
        else:
            pred = self.decoder(out.patches(layer))
        return ObjectiveOutput({"mse": self.criterion(pred, images, p)})
