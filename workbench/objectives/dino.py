"""DINO: self-distillation with no labels (Caron et al. 2021)."""

from __future__ import annotations

import copy

import torch

from ..config import ObjectiveConfig
from ..losses import DINOLoss
from ..models.teacher import ema_update_
from . import params as check
from .base import BuildContext, Needs, Objective, ObjectiveOutput, StepInputs
from .heads import DINOHead


class DINOObjective(Objective):
    """The student (all crops) matches the EMA teacher's centred, sharpened distribution over
    ``out_dim`` prototypes on the global crops.

    The teacher is the shared EMA backbone plus this objective's EMA copy of the DINO head (updated
    with the same momentum). ``teacher_temp`` follows a warm-up from 0.04 to 0.07 by default.
    Metrics: ``teacher_entropy`` (-> 0: sharpening collapse; -> log K: uniform collapse),
    ``kl`` (KL(P_t || P_s)) and ``rankme`` of the student's pooled representation.

    Params: out_dim, hidden, bottleneck, student_temp, teacher_temp, center_momentum, pool.
    """

    schedulable = frozenset({"teacher_temp"})
    defaults = {
        "out_dim": 1024, "hidden": 256, "bottleneck": 64, "student_temp": 0.1,
        "teacher_temp": {"schedule": "warmup", "start": 0.04, "end": 0.07, "warmup": 0.3},
        "center_momentum": 0.9, "pool": None,
    }

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__(name, config, context)
        p = self.params
        for key in ("out_dim", "hidden", "bottleneck"):
            check.positive_int(name, p, key)
        check.positive(name, p, "student_temp", "a softmax temperature")
        check.number(name, p, "teacher_temp", lambda t: t > 0, "a softmax temperature > 0, or a schedule between such")
        check.number(name, p, "center_momentum", lambda m: 0.0 <= m <= 1.0,
                     "an EMA momentum of the centre in [0, 1] (1 freezes it at zero)")
        self.pool = check.pool(name, p) or context.pool
        self.head = DINOHead(context.width, p["out_dim"], p["hidden"], p["bottleneck"])
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.criterion = DINOLoss(p["out_dim"], student_temp=p["student_temp"], center_momentum=p["center_momentum"])

    @property
    def needs(self) -> Needs:
        return Needs(views=("global", "local"), teacher_views=("global",))

    def ema_update(self, momentum: float) -> None:
        ema_update_(self.teacher_head, self.head, momentum)

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:
        layer = self.layers[-1]
        student = []
        for view in ("global", "local"):
            if view in inputs.student:
                student += list(self.head(inputs.student[view].pooled(layer, self.pool)).chunk(inputs.chunks(view)))
        with torch.no_grad():
            teacher = list(self.teacher_head(inputs.teacher["global"].pooled(layer, self.pool)).chunk(inputs.chunks("global")))
        temp = float(self.hp("teacher_temp", inputs))
        loss, parts = self.criterion.forward_parts(student, teacher, teacher_temp=temp)
        return ObjectiveOutput({"ce": loss}, {k: v.detach() for k, v in parts.items()})
