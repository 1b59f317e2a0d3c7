"""The notebooks' shared settings: one table of scales, merged in a fixed order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench import make_config
from workbench.analysis.notebook import CIFAR10, SCALES, notebook_settings
from workbench.errors import ConfigError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_precedence_scale_then_sizes_then_seed_then_overrides(tmp_path):
    s = notebook_settings("01_stepwise_construction", "cpu", seed=3, interactive=True, data_dir=tmp_path,
                          sizes={"model.depth": 2, "model.width": 0}, overrides={"model.depth": 5, "optim.lr": 0.1})
    scale = SCALES["01_stepwise_construction"]["cpu"].overrides
    assert s.overrides["model.width"] == scale["model.width"]  # a zero size keeps the scale's value
    assert s.overrides["model.depth"] == 5  # the size (2), then the overrides (5), applied last
    assert s.overrides["seed"] == 3 and s.overrides["trainer.enable_progress_bar"] is True
    assert s.overrides["optim.lr"] == 0.1 and s.knobs == {}


def test_knobs_and_the_data_root_of_cifar_scales(tmp_path):
    s = notebook_settings("03_reconstruction_as_anchor", "gpu-cifar10", data_dir=tmp_path / "d")
    assert s.overrides["data.root"] == str((tmp_path / "d").resolve()) and s.knobs == {"norm_pix": True}
    s = notebook_settings("04_dense_curricula", "cpu", sizes={"target": 0.7, "every": 0})
    assert s.knobs == {"target": 0.7, "every": 20}  # a size naming a knob replaces it; zero keeps it
    assert "target" not in s.overrides
    s = notebook_settings("06_compare_runs", "cpu", seed=None, interactive=None)
    assert "seed" not in s.overrides and "trainer.enable_progress_bar" not in s.overrides


def test_unknown_notebook_or_scale_is_a_clear_error():
    with pytest.raises(ConfigError, match="SCALE.*one of cpu, gpu"):
        notebook_settings("00_quickstart", "tpu")
    with pytest.raises(ConfigError, match="notebook"):
        notebook_settings("99_missing", "cpu")


@pytest.mark.parametrize("notebook,scale", [(n, s) for n, scales in SCALES.items() for s in scales])
def test_every_scale_is_a_valid_config(notebook, scale, tmp_path):
    s = notebook_settings(notebook, scale, data_dir=tmp_path)
    config = make_config("supervised", {k: v for k, v in s.overrides.items() if not k.startswith("objectives.")},
                         validate=False)
    assert config.data.name in ("shapes", "cifar10")
    if scale == "gpu" and notebook in ("01_stepwise_construction", "03_reconstruction_as_anchor",
                                       "04_dense_curricula"):
        assert config.data.name == "shapes" and config.data.shapes.image_size == 64  # the factors stay
    assert all(v != CIFAR10 for v in s.overrides.values())


def test_every_notebook_with_scales_reads_them_from_the_table():
    for notebook in SCALES:
        source = (NOTEBOOKS / f"{notebook}.py").read_text()
        assert f'NOTEBOOK = "{notebook}"' in source and "notebook_settings(" in source, notebook
        assert not re.search(r"^SCALES = \{", source, re.M), f"{notebook} defines its own SCALES"
