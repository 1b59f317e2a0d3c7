"""A workbench for step-wise and latent losses on small Vision Transformers.

    import workbench as wb
    run = wb.fit(preset="supervised", overrides=["trainer.max_epochs=2"])
    run.metrics            # a DataFrame of everything logged
"""

from . import data, figures
from .analysis.analyze import analyze
from .config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, RunConfig, TrainerConfig
from .errors import ConfigError, DataError, NonFiniteLossError, WorkbenchError
from .models.vit import VisionTransformer, ViTOutput
from .presets import PRESETS, make_config
from .runs import Run, compare_runs, list_runs, load_run
from .training.fit import fit

plots = figures  # the name notebooks use: wb.plots.layer_explorer(...)

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataConfig", "DataError", "ModelConfig", "NonFiniteLossError", "ObjectiveConfig",
    "OptimConfig", "PRESETS", "Run", "RunConfig", "TrainerConfig", "ViTOutput", "VisionTransformer",
    "WorkbenchError", "analyze", "compare_runs", "fit", "list_runs", "load_run", "make_config",
]
