"""Loss functions: the math of every objective, as ``nn.Module``s on plain tensors.

One file per family; heads, views, masks and backbones live elsewhere, so each loss can be read
next to its formula and tested against a hand computation. Every loss computes in float32 with
autocast disabled (safe under bf16 mixed precision), documents its formula, its paper and the
published defaults, and carries a short example. ``forward`` returns the scalar loss. A loss with
several weighted terms (VICReg, LeJEPA) also has ``terms(...)``: the weighted terms, which add up
to ``forward``'s value and which an objective logs as they are. A loss with monitoring metrics
(DINO, NT-Xent, Barlow, the toy) has ``forward_parts(...) -> (loss, metrics)``.

Under DDP every loss returns the single-process value of the batch concatenated across ranks;
gradients follow the convention of :mod:`workbench.distributed` (parameter gradients after DDP's
averaging equal the single-process ones). A loss call then runs collectives: call it on every
rank, in the same order (this includes helpers such as ``DINOLoss.teacher_entropy``).

============================  ===================================================================
``DINOLoss``                  DINO self-distillation (centre buffer; entropy / KL metrics)
``KLConsistencyLoss``         symmetric KL between two views: the toy that collapses
``SIGReg``, ``LeJEPALoss``    sliced Epps-Pulley regulariser and LeJEPA (``epps_pulley``)
``VICRegLoss``                VICReg (``variance_loss``, ``covariance_loss`` for any layer)
``BarlowTwinsLoss``           Barlow Twins
``NTXentLoss``                SimCLR's NT-Xent
``PatchReconstructionLoss``   MAE, the pixel ladder and full-image reconstruction (``patchify``)
``LatentPredictionLoss``      I-JEPA and the latent ladder (``layer_normalised``, ``top_k_average``)
============================  ===================================================================

The supervised objective uses torch's own ``nn.CrossEntropyLoss``. Adding a loss: see
``docs/extending.md``. May import only :mod:`workbench.distributed` (the cross-rank reductions).
"""

from .barlow import BarlowTwinsLoss
from .consistency import KLConsistencyLoss
from .contrastive import NTXentLoss
from .dino import DINOLoss
from .latent import LatentPredictionLoss, layer_normalised, top_k_average
from .reconstruction import PatchReconstructionLoss, patchify, pixel_targets, unpatchify
from .sigreg import LeJEPALoss, SIGReg, epps_pulley, epps_pulley_quadrature, random_directions
from .vicreg import VICRegLoss, covariance_loss, variance_loss

__all__ = [
    "BarlowTwinsLoss", "DINOLoss", "KLConsistencyLoss", "LatentPredictionLoss", "LeJEPALoss", "NTXentLoss",
    "PatchReconstructionLoss", "SIGReg", "VICRegLoss", "covariance_loss", "epps_pulley", "epps_pulley_quadrature",
    "layer_normalised", "patchify", "pixel_targets", "random_directions", "top_k_average", "unpatchify",
    "variance_loss",
]
