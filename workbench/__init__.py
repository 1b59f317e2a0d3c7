"""A workbench for step-wise and latent losses on small Vision Transformers.

    import workbench as wb
    run = wb.fit(preset="supervised", overrides=["trainer.max_epochs=2"])
    run.metrics            # a DataFrame of everything logged
"""

from .config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, RunConfig, TrainerConfig
from .errors import ConfigError, DataError, NonFiniteLossError, WorkbenchError
from .presets import PRESETS, make_config
from .runs import Run, compare_runs, list_runs, load_run
from .train import fit
from .vit import VisionTransformer, ViTOutput
from . import data, plots

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataConfig", "DataError", "ModelConfig", "NonFiniteLossError", "ObjectiveConfig",
    "OptimConfig", "PRESETS", "Run", "RunConfig", "TrainerConfig", "ViTOutput", "VisionTransformer",
    "WorkbenchError", "compare_runs", "fit", "list_runs", "load_run", "make_config",
]
