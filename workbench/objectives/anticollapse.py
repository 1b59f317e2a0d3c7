"""Per-layer anti-collapse: SIGReg or VICReg's variance term on each chosen layer."""

from __future__ import annotations

from ..config import ObjectiveConfig
from ..losses import SIGReg, variance_loss
from . import params as check
from .base import BuildContext, Objective, ObjectiveOutput, StepInputs


class AntiCollapseObjective(Objective):
    """Keeps every chosen layer's pooled representation (clean view) spread out.

    ``method: sigreg`` pushes it towards an isotropic Gaussian (the LeJEPA regulariser);
    ``method: variance`` keeps every dimension's standard deviation above 1 (VICReg's hinge).
    Terms: ``<method>_l<k>`` per layer.
    """

    defaults = {"method": "sigreg", "directions": 256, "pool": None}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.choice(name, self.params, "method", ("sigreg", "variance"))
        check.positive_int(name, self.params, "directions")
        self.pool = check.pool(name, self.params) or context.pool
        self.sigreg = SIGReg(num_directions=int(self.params["directions"]))

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        out = inputs.student["clean"]
        method = self.params["method"]
        terms = {}
        for layer in self.layers:
            z = out.pooled(layer, self.pool).float()
            terms[f"{method}_l{layer}"] = self.sigreg(z, generator=inputs.generator) if method == "sigreg" else variance_loss(z)
        return ObjectiveOutput(terms)
