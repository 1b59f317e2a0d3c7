"""Loss functions: pure math on tensors, one file per family (heads, views and backbones live elsewhere).

Every loss is an ``nn.Module`` (or a function) that computes in float32 with autocast disabled, so
it is safe under bf16 mixed precision. ``forward`` returns a scalar; where a loss has several
terms or monitoring metrics, ``forward_parts`` returns ``(loss, parts)`` with ``parts`` a dict of
scalar tensors (documented per class). Under DDP every loss returns the single-process value of
the batch concatenated across ranks; gradients follow the convention of
:mod:`workbench.distributed` (parameter gradients after DDP's averaging equal the single-process
ones). Under DDP a loss call runs collectives: call it on every rank, in the same order (this
includes helpers such as ``DINOLoss.teacher_entropy``).

============================  ===================================================================
``DINOLoss``                  DINO self-distillation (centre buffer; entropy / KL metrics)
``KLConsistencyLoss``         symmetric KL between two views: the toy that collapses
``SIGReg``, ``LeJEPALoss``    sliced Epps-Pulley regulariser and LeJEPA (``epps_pulley``)
``VICRegLoss``                VICReg (``variance_loss``, ``covariance_loss`` for any layer)
``BarlowTwinsLoss``           Barlow Twins
``NTXentLoss``                SimCLR's NT-Xent
``MAELoss``, ``PixelMSELoss`` masked / full pixel reconstruction (``patchify``, ``unpatchify``)
============================  ===================================================================
"""

from .barlow import BarlowTwinsLoss
from .consistency import KLConsistencyLoss
from .contrastive import NTXentLoss
from .dino import DINOLoss
from .reconstruction import MAELoss, PixelMSELoss, patchify, pixel_targets, unpatchify
from .sigreg import LeJEPALoss, SIGReg, epps_pulley, epps_pulley_quadrature, random_directions
from .vicreg import VICRegLoss, covariance_loss, variance_loss

__all__ = [
    "BarlowTwinsLoss", "DINOLoss", "KLConsistencyLoss", "LeJEPALoss", "MAELoss", "NTXentLoss", "PixelMSELoss",
    "SIGReg", "VICRegLoss", "covariance_loss", "epps_pulley", "epps_pulley_quadrature", "patchify",
    "pixel_targets", "random_directions", "unpatchify", "variance_loss",
]
