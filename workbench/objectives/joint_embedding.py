"""Joint-embedding objectives on augmented views: the toy of docs/concepts.md, LeJEPA, VICReg, Barlow Twins,
SimCLR. Each pools a chosen layer of every global (and, for LeJEPA, local) crop, maps it through
its own projector, and applies its loss to the projections.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ObjectiveConfig
from ..diagnostics import rankme
from ..losses import BarlowTwinsLoss, KLConsistencyLoss, LeJEPALoss, NTXentLoss, VICRegLoss
from . import params as check
from .base import BuildContext, Needs, Objective, ObjectiveOutput, StepInputs
from .heads import default_hidden, mlp


class JointEmbeddingObjective(Objective):
    """Shared plumbing: views -> pooled layer -> projector -> per-view embeddings -> loss.

    Params common to all: ``dim`` (projection width), ``hidden`` (null: ``hidden_factor`` times
    the model width, rounded up to a power of two, at least 64), ``proj_layers`` (0: no
    projector, the loss acts on the pooled representation itself), ``batch_norm``
    (Linear-BatchNorm-ReLU between the projector's layers, as in the official VICReg, LeJEPA,
    Barlow Twins and SimCLR code; false: Linear-GELU), ``pool``.
    Every subclass logs ``rankme`` of the embedding its loss acts on (first global view).
    """

    defaults = {"dim": 128, "hidden": None, "proj_layers": 2, "batch_norm": True, "pool": None}
    hidden_factor = 2
    uses_local = False

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        check.positive_int(name, p, "dim")
        check.positive_int(name, p, "hidden", optional=True)
        check.positive_int(name, p, "proj_layers", minimum=0)
        check.choice(name, p, "batch_norm", (True, False), "true or false")
        self.pool = check.pool(name, p) or context.pool
        if p["proj_layers"] == 0:
            self.projector: nn.Module = nn.Identity()
            self.dim = context.width
        else:
            hidden = p["hidden"] or default_hidden(context.width, self.hidden_factor)
            self.projector = mlp(context.width, hidden, p["dim"], p["proj_layers"], batch_norm=p["batch_norm"])
            self.dim = p["dim"]

    @property
    def needs(self) -> Needs:
        return Needs(views=("global", "local") if self.uses_local else ("global",))

    def embeddings(self, inputs: StepInputs) -> list[torch.Tensor]:
        """One B x dim tensor per crop: global crops first, then local crops."""
        layer = self.layers[-1]
        views = [v for v in (("global", "local") if self.uses_local else ("global",)) if v in inputs.student]
        if not views:
            return []
        pooled = [inputs.student[v].pooled(layer, self.pool) for v in views]
        # One projector call over every crop, as LeJEPA's reference code calls its projector once on
        # the batch of all views: the batch norm normalises every view, global and local, with the
        # same statistics and updates its running statistics once per step.
        z = self.projector(torch.cat(pooled) if len(pooled) > 1 else pooled[0])
        return list(z.split(inputs.batch["images"].shape[0]))  # one B x dim tensor per crop

    def loss(self, z: list[torch.Tensor], inputs: StepInputs) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        z = self.embeddings(inputs)
        terms = self.loss(z, inputs)
        metrics = {"rankme": rankme(self.monitored(z[0]).detach())} if inputs.monitor else {}
        return ObjectiveOutput(terms, metrics)

    def monitored(self, z: torch.Tensor) -> torch.Tensor:
        return z.float()

    def embedding(self, out) -> torch.Tensor:
        """The embedding the loss acts on, for one backbone output (e.g. of held-out images)."""
        return self.monitored(self.projector(out.pooled(self.layers[-1], self.pool)))


class ToyKLObjective(JointEmbeddingObjective):
    """The toy (docs/concepts.md): two crops, one shared encoder and head, KL between their softmax outputs,
    no anti-collapse, no stop-gradient. It is expected to collapse (a constant output has loss 0),
    and the diagnostics are there to show it. The monitored embedding is the softmax output."""

    defaults = {**JointEmbeddingObjective.defaults, "dim": 64, "proj_layers": 1, "batch_norm": False,
                "temperature": 1.0}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.positive(name, self.params, "temperature", "a softmax temperature")
        self.kl = KLConsistencyLoss(temperature=float(self.params["temperature"]))

    def loss(self, z, inputs):
        return {"kl": self.kl(z[0], z[1])}

    def monitored(self, z):
        return torch.softmax(z.float() / float(self.params["temperature"]), dim=-1)


class LeJEPAObjective(JointEmbeddingObjective):
    """LeJEPA (Balestriero & LeCun 2025): SIGReg pushes every view's embedding towards an isotropic
    Gaussian; the invariance term pulls views to their mean. No teacher, no stop-gradient.
    Params: lam (SIGReg weight, 0.02-0.05), directions (random 1-D projections per step), center
    (``global``: every view is pulled towards the mean of the global crops' embeddings, as in the
    paper; ``all``: towards the mean of every crop, local ones included).

    The projector is the official one's shape: three layers, Linear-BatchNorm-ReLU between them,
    hidden width four times the model width (512 -> 2048 -> 2048 -> out in the official minimal
    example); ``docs/design-notes.md`` has the measurement behind that choice."""

    defaults = {**JointEmbeddingObjective.defaults, "proj_layers": 3, "lam": 0.05, "directions": 256,
                "center": "global"}
    hidden_factor = 4
    uses_local = True

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.number(name, self.params, "lam", lambda x: 0.0 <= x <= 1.0,
                     "the SIGReg weight, a number in [0, 1] (the invariance term gets 1 - lam)")
        check.positive_int(name, self.params, "directions")
        check.choice(name, self.params, "center", ("global", "all"), "global (the paper) or all")
        self.criterion = LeJEPALoss(lam=float(self.params["lam"]), num_directions=int(self.params["directions"]),
                                    center=self.params["center"])

    def loss(self, z, inputs):
        num_global = inputs.views["global"].shape[0] // inputs.batch["images"].shape[0]  # crops come first
        return self.criterion.terms(z, num_global=num_global, generator=inputs.generator)


class VICRegObjective(JointEmbeddingObjective):
    """VICReg (Bardes et al. 2022): invariance + variance + covariance on an expander's output.

    The expander is the official one's shape: three layers, Linear-BatchNorm-ReLU between them,
    hidden width four times the model width (2048 -> 8192 -> 8192 -> 8192 for a ResNet-50)."""

    defaults = {**JointEmbeddingObjective.defaults, "dim": 256, "proj_layers": 3,
                "sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0}
    hidden_factor = 4

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        for key in ("sim_weight", "var_weight", "cov_weight"):
            check.non_negative(name, p, key, "a loss coefficient")
        self.criterion = VICRegLoss(float(p["sim_weight"]), float(p["var_weight"]), float(p["cov_weight"]))

    def loss(self, z, inputs):
        return self.criterion.terms(z[0], z[1])


class BarlowObjective(JointEmbeddingObjective):
    """Barlow Twins (Zbontar et al. 2021): the cross-correlation of two views' standardised
    embeddings is pushed to the identity."""

    defaults = {**JointEmbeddingObjective.defaults, "dim": 256, "lambd": 0.0051}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.non_negative(name, self.params, "lambd", "the off-diagonal weight, a number")
        self.criterion = BarlowTwinsLoss(lambd=float(self.params["lambd"]))

    def loss(self, z, inputs):
        return {"barlow": self.criterion(z[0], z[1])}


class SimCLRObjective(JointEmbeddingObjective):
    """SimCLR / InfoNCE (Chen et al. 2020): NT-Xent over the 2B projections of two views."""

    defaults = {**JointEmbeddingObjective.defaults, "temperature": 0.5}

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        check.positive(name, self.params, "temperature", "a softmax temperature")
        self.criterion = NTXentLoss(temperature=float(self.params["temperature"]))

    def loss(self, z, inputs):
        return {"nt_xent": self.criterion(z[0], z[1])}
