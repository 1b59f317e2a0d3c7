"""The notebook series runs headless and states only what its numbers show.

Every notebook of the series is executed through papermill with ``INTERACTIVE=False`` and the small
parameters below, into a temporary runs directory. It must write its headline numbers to
``<RUNS_DIR>/<notebook>/headline.json``, every one finite, and the phenomena its narrative states
are asserted on them by the notebook's check function.

To add a notebook: one entry in ``NOTEBOOKS`` (its small test parameters) and one function
decorated with ``@checks("<notebook>")`` that asserts what the notebook claims. A claim asserted
here must hold *at these small parameters*; one that needs the CPU default belongs in a separate
slow test (or in a phenomenon test that trains the same settings).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

# The label's L-BFGS probe dominates a diagnostics pass on a tiny probe set (it never converges
# on a separable one): few iterations and no coherence probes keep the passes short. A notebook
# that takes OVERRIDES (extra dotted overrides for every run) can use it.
FAST_DIAGNOSTICS = {"diagnostics.probe_steps": 20, "diagnostics.coherence": []}

# notebook -> the parameters that make it run in well under a minute, or {} for a notebook whose
# claims need its CPU default (INTERACTIVE, RUNS_DIR and DATA_DIR are set by the harness)
NOTEBOOKS: dict[str, dict] = {
    "01_stepwise_construction": {
        "NUM_IMAGES": 4800, "MAX_EPOCHS": 4, "WIDTH": 32, "DEPTH": 3, "HEADS": 2, "BATCH_SIZE": 64,
        "OVERRIDES": FAST_DIAGNOSTICS,
    },
    "02_latent_losses_and_collapse": {
        "NUM_IMAGES": 1200, "MAX_STEPS": 60, "WIDTH": 32, "DEPTH": 2, "DIM": 32, "PROBE_IMAGES": 300,
        "OVERRIDES": FAST_DIAGNOSTICS,
    },
    # three recipes x SEEDS 0-2 in two processes, about 90 s; the CPU default's intervals need its
    # own size (7.5 minutes), so the check asserts the intervals' arithmetic and statement 1's direction
    "03_reconstruction_as_anchor": {"NUM_IMAGES": 3000, "WIDTH": 48, "DEPTH": 2, "HEADS": 2, "BATCH_SIZE": 64,
                                    "MAX_EPOCHS": 4},
    "04_dense_curricula": {
        # a target every check meets: the adaptive run must raise its ratio even in a few steps.
        # The label probe is asserted on: keep its L-BFGS iterations.
        "NUM_IMAGES": 1200, "MAX_EPOCHS": 2, "WIDTH": 32, "DEPTH": 2, "HEADS": 2, "BATCH_SIZE": 64,
        "ADAPTIVE_TARGET": 10.0, "ADAPTIVE_EVERY": 2, "OVERRIDES": {"diagnostics.coherence": []},
    },
    "06_compare_runs": {
        # big enough for the label heads to learn (validation accuracy about 0.6 after 111 steps)
        "PRESETS": ["supervised", "stepwise-deepsup", "lejepa"], "SEEDS": [0, 1], "JOBS": 2, "NUM_IMAGES": 3000,
        "MAX_EPOCHS": 3, "WIDTH": 64, "DEPTH": 2,
        "OVERRIDES": {"data.batch_size": 64, "trainer.log_every_n_steps": 5, "diagnostics.coherence": []},
    },
    "07_pretrained_layer_by_layer": {
        # two random timm ViTs of 2 blocks, 207 probe images (10% of the 2,070 left after the test split)
        "DEPTH": 2, "NUM_IMAGES": 2300, "PROBE_SIZE": 207, "LAYOUT_POINTS": 150, "UMAP_EPOCHS": 20,
        "OVERRIDES": {"diagnostics.probe_steps": 20, "diagnostics.token_images": 32},
    },
}

# the parameters every notebook of the series has (the harness and `make notebooks` rely on them)
REQUIRED_PARAMETERS = ("SCALE", "INTERACTIVE", "RUNS_DIR", "DATA_DIR", "SEED")

Check = Callable[[dict, Path], None]
CHECKS: dict[str, Check] = {}


def checks(notebook: str) -> Callable[[Check], Check]:
    """Register ``function(numbers, runs_dir)`` as the assertions for ``notebook``."""
    def register(function: Check) -> Check:
        CHECKS[notebook] = function
        return function
    return register


# ---- the phenomena each notebook states ----------------------------------------------------------


def check_seed_intervals(numbers: dict, keys: list[str], notebook_dir: Path, runs: tuple[str, ...]) -> None:
    """Every key is a mean over SEEDS 0-2 with its 95% interval, and every recipe trained each seed."""
    for key in keys:
        assert numbers[f"{key}/n"] == 3, key
        assert numbers[f"{key}/low"] <= numbers[f"{key}/mean"] <= numbers[f"{key}/high"], key
    for run in runs:
        for seed in (0, 1, 2):
            assert (notebook_dir / f"{run}-seed{seed}" / "diagnostics.csv").is_file(), (run, seed)


@checks("01_stepwise_construction")
def check_stepwise_construction(numbers: dict, runs_dir: Path) -> None:
    runs = ("end-to-end", "deep-supervision", "pixel-ladder-fine-to-coarse", "pixel-ladder-coarse-to-fine",
            "local-greedy")
    e2e, deep, greedy = "end-to-end", "deep-supervision", "local-greedy"
    labelled, ladders = (e2e, deep, greedy), ("pixel-ladder-fine-to-coarse", "pixel-ladder-coarse-to-fine")
    intervals = [f"{pool}/{key}" for run in runs for pool in ("cls", "mean")
                 for key in (f"label_acc/{run}/block1", f"label_acc/{run}/last_layer",
                             *(f"factor/{f}/{run}/last_layer" for f in ("color", "texture", "shape", "count")),
                             *(f"peak_layer/{run}/{f}" for f in ("color", "texture", "shape", "count")))]
    intervals += [f"test_acc/{run}/last_head" for run in labelled]
    intervals += [f"ladder_mse/{run}/{which}" for run in ladders for which in ("coarsest", "finest")]
    intervals += [f"difference/{key}/{run}" for run in (deep, greedy) for key in ("block1", "test_acc")]
    intervals += ["difference/gain/end-to-end-local-greedy", *(f"ratio/ladder_mse/{run}" for run in ladders)]
    check_seed_intervals(numbers, intervals, runs_dir / "01_stepwise_construction", runs)
    # the statements are about the CLS token, and asserted on the means over SEEDS 0-2
    n = {k[len("cls/"):-len("/mean")]: v for k, v in numbers.items() if k.startswith("cls/") and k.endswith("/mean")}
    mean = {k[:-len("/mean")]: v for k, v in numbers.items() if k.endswith("/mean")}
    for run in (deep, greedy):  # a paired difference's mean is the difference of the means (the same seeds)
        expected = n[f"label_acc/{run}/block1"] - n[f"label_acc/{e2e}/block1"]
        assert abs(mean[f"difference/block1/{run}"] - expected) < 1e-9, run
    # The small parameters shrink the gaps the notebook states at its CPU default, so statements 1-2 are
    # asserted in their direction. Measured at these parameters, the means over SEEDS 0-2 (one thread
    # per run): block-1 advantage 0.087 (bound 0.02), gain difference 0.151 (0.03), end to end - greedy
    # on the test split 0.050 (0), deep - end to end -0.037 (0.1), colour gap 0.33 (0.2), shape gap
    # 0.30 (0.2), loss ratios 0.70 / 0.73 (0.9). Per seed, from single-seed executions over SEED 0-4:
    #   block 1, (deep + greedy) / 2 - end to end   0.147 / 0.043 / 0.074 / 0.046 / 0.054
    #   gain after block 1, end to end - greedy     0.162 / 0.100 / 0.193 / 0.115 / 0.069
    #   test split, end to end - greedy             0.058 / 0.019 / 0.073 / 0.065 / 0.083
    #   test split, |deep supervision - end to end| 0.035 / 0.054 / 0.021 / 0.019 / 0.062
    # (the CPU default's own gaps -- block 1 more than 0.1 above, greedy's gain under 0.05 -- held at 0.21
    # and 0.016 there; at these parameters they failed on 4 and 1 of the 5 seeds, so they are not asserted)
    # 1. a head on every block: the label more readable at block 1 than end to end makes it
    block1 = (n[f"label_acc/{deep}/block1"] + n[f"label_acc/{greedy}/block1"]) / 2
    assert block1 > n[f"label_acc/{e2e}/block1"] + 0.02
    # 2. greedy gains less after block 1 than end to end, and ends below it on the test split; deep
    #    supervision ends near end to end
    assert mean["difference/gain/end-to-end-local-greedy"] > 0.03
    assert mean[f"test_acc/{greedy}/last_head"] < mean[f"test_acc/{e2e}/last_head"]
    assert abs(mean[f"difference/test_acc/{deep}"]) < 0.1
    # 3.-5. as stated; over SEED 0-4 the colour gap was 0.28..0.51, the shape gap 0.25..0.35 and the
    #    coarsest / finest loss ratio 0.69..0.73
    # 3. colour: the ladders keep it, label-trained recipes lose part of it (a gap of at least 0.2)
    assert min(n[f"factor/color/{r}/last_layer"] for r in ladders) > \
        max(n[f"factor/color/{r}/last_layer"] for r in labelled) + 0.2
    # 4. the ladders do not build the label's shape (a gap of at least 0.2 the other way)
    assert max(n[f"factor/shape/{r}/last_layer"] for r in ladders) + 0.2 < \
        min(n[f"factor/shape/{r}/last_layer"] for r in labelled)
    # 5. coarse targets are easier: the coarsest target's loss below 0.9 x the finest's
    for run in ladders:
        assert mean[f"ratio/ladder_mse/{run}"] < 0.9, run


@checks("02_latent_losses_and_collapse")
def check_latent_losses_and_collapse(numbers: dict, runs_dir: Path) -> None:
    runs = ("toy", "dino", "lejepa", "vicreg")
    fixes = ("dino", "lejepa", "vicreg")
    for run in runs:
        for key in ("embedding", "last_layer", "first_block", "patch_tokens"):
            assert f"rankme/{run}/{key}" in numbers, f"rankme/{run}/{key}"
        assert f"std_l2/{run}/last_layer" in numbers and f"uniformity/{run}/last_layer" in numbers
    n = numbers
    # Margins measured at these parameters over SEED 0-2 (one thread; the numbers the checks compare):
    # toy embedding 1.17..1.24 and last layer 1.64..1.71 (< 2); any fix's std / the toy's 13.9..15.6 (> 5);
    # uniformity: toy -0.005..-0.003 (> -0.1), the fixes' highest -0.53 (< -0.3); random / toy variance
    # 64..72 (> 10); LeJEPA's and VICReg's variance / the random network's 3.2..5.4 (> 1); the toy's first
    # block / last layer 1.14..1.18 (> 1), patch tokens / CLS 10.9..11.5 (> 5); LeJEPA's and VICReg's
    # embedding / width 0.36..0.43 (> 0.25); a fix's last layer / the toy's 2.6..3.5 (> 2); DINO's teacher
    # entropy / log K 0.979..0.987 (< 1: its tightest margin, 0.09 nats); random - highest last layer 0.9..1.3
    # 1. the toy collapses: its embedding's RankMe below 2 (its last layer too, at this size), its
    #    std of l2-normalised embeddings under a fifth of any fix's, its uniformity near 0
    assert n["rankme/toy/embedding"] < 2.0
    assert n["rankme/toy/last_layer"] < 2.0
    assert n["std_l2/toy/last_layer"] < min(n[f"std_l2/{f}/last_layer"] for f in fixes) / 5
    assert n["uniformity/toy/last_layer"] > -0.1
    assert all(n[f"uniformity/{f}/last_layer"] < -0.3 for f in fixes)
    #    its spectrum sinks: total variance of the last layer under a tenth of the random network's,
    #    where LeJEPA's and VICReg's end above it
    assert n["variance/toy/last_layer"] < n["variance/init/last_layer"] / 10
    assert all(n[f"variance/{f}/last_layer"] > n["variance/init/last_layer"] for f in ("lejepa", "vicreg"))
    # 2. deepest at the top, and only in the CLS token: the patch tokens keep 5x its rank
    assert n["rankme/toy/first_block"] > n["rankme/toy/last_layer"]
    assert n["rankme/toy/patch_tokens"] > 5 * n["rankme/toy/last_layer"]
    # 3. SIGReg and VICReg keep their embedding above a quarter of its width; their last layers end
    #    above twice the toy's at this size (three times at the CPU preset: test_collapse_phenomenon)
    for f in ("lejepa", "vicreg"):
        assert n[f"rankme/{f}/embedding"] > n[f"width/{f}/embedding"] / 4, f
        assert n[f"rankme/{f}/last_layer"] > 2 * n["rankme/toy/last_layer"], f
    # 4. DINO's teacher entropy between half of log K and log K; its last layer above twice the toy's
    log_k = n["dino/teacher_entropy/log_k"]
    assert 0.5 * log_k < n["dino/teacher_entropy/final"] < log_k
    assert n["rankme/dino/last_layer"] > 2 * n["rankme/toy/last_layer"]
    # 5. every run's last layer ends below the random network's
    assert all(n[f"rankme/{r}/last_layer"] < n["rankme/init/last_layer"] for r in runs)


@checks("03_reconstruction_as_anchor")
def check_reconstruction_as_anchor(numbers: dict, runs_dir: Path) -> None:
    runs = ("latent-only", "latent+mae", "coherent")
    factors = ("color", "texture", "shape", "count")
    intervals = [f"factor/{f}/{run}/{what}" for run in runs for f in factors for what in ("last_layer", "change")]
    intervals += [f"{m}/{run}/last_layer" for run in runs for m in ("invariance", "label_acc")]
    intervals += [f"invariance/{run}/gain" for run in runs]
    intervals += [f"difference/{m}/{run}" for run in runs[1:] for m in (*factors, "invariance")]
    intervals += [f"control/color/{where}/change" for where in ("projector_output", "last_layer")]
    check_seed_intervals(numbers, intervals, runs_dir / "03_reconstruction_as_anchor", runs)
    # a paired difference's mean is the difference of the two recipes' means (the same seeds)
    for run in runs[1:]:
        for f in factors:
            expected = numbers[f"factor/{f}/{run}/last_layer/mean"] - numbers[f"factor/{f}/latent-only/last_layer/mean"]
            assert abs(numbers[f"difference/{f}/{run}/mean"] - expected) < 1e-9, (run, f)
    # statement 1's direction: the backbone's last layer keeps more colour than the projector output.
    # Measured at these parameters with SEED = 0 / 10 / 20 (seeds 0-2, 10-12, 20-22): the last
    # layer's change minus the projector's 0.30 / 0.35 / 0.10; the projector's change alone -0.24 /
    # -0.16 / -0.05, too close to zero at this size to assert (tests/test_positive_controls.py
    # asserts it through an interval)
    kept = numbers["control/color/last_layer/change/mean"] - numbers["control/color/projector_output/change/mean"]
    assert kept > 0, kept


@checks("04_dense_curricula")
def check_dense_curricula(numbers: dict, runs_dir: Path) -> None:
    runs = ("fixed", "scheduled", "adaptive")
    intervals = [f"{key}/{run}/{what}" for run in runs
                 for key, what in (("probe", "linear_acc"), ("probe", "change"), ("mask_ratio", "final"),
                                   ("mae_mse", "final"))]
    intervals += [f"factor/{f}/{run}/{what}" for run in runs for f in ("color", "texture", "shape", "count")
                  for what in ("last_layer", "change")]
    intervals += [f"difference/{key}/{run}" for run in runs[1:] for key in ("probe", "mae_mse")]
    intervals += ["adaptive/raises"]
    check_seed_intervals(numbers, intervals, runs_dir / "04_dense_curricula", runs)
    for run in runs[1:]:  # a paired difference's mean is the difference of the means (the same seeds)
        expected = numbers[f"probe/{run}/linear_acc/mean"] - numbers["probe/fixed/linear_acc/mean"]
        assert abs(numbers[f"difference/probe/{run}/mean"] - expected) < 1e-9, run
    # statement 1: the curricula did what they say, on every seed: the scheduled ratio ends where the
    # fixed one is, and the adaptive one (its target met at every check here) climbed from 0.25
    for key in ("mask_ratio/fixed/final", "mask_ratio/scheduled/final"):
        assert abs(numbers[f"{key}/mean"] - 0.75) < 1e-6 and numbers[f"{key}/sd"] < 1e-6, key
    for seed in (0, 1, 2):
        raises = numbers[f"adaptive/seed{seed}/raises"]
        assert raises >= 1, seed
        assert abs(numbers[f"adaptive/seed{seed}/final_ratio"] - min(0.9, 0.25 + 0.05 * raises)) < 1e-6, seed
    # Margins measured at these parameters with SEED = 0 / 10 / 20 (seeds 0-2, 10-12, 20-22), one
    # thread per run, means over the three seeds: 4 raises on every seed; scheduled's final loss
    # minus fixed's -0.013 / -0.007 / -0.007; the label probe's change from the untrained network
    # at most 0.021 / 0.021 / 0.031 in size.
    # statement 2: the scheduled run ends with fixed's loss at the same ratio, within 0.05 (the
    # adaptive run ends at another ratio: its loss is not compared)
    assert abs(numbers["difference/mae_mse/scheduled/mean"]) < 0.05
    # statement 3: "no curriculum moves the label probe by 0.1 from the untrained network's"
    for run in runs:
        assert abs(numbers[f"probe/{run}/change/mean"]) < 0.1, run


@checks("06_compare_runs")
def check_compare_runs(numbers: dict, runs_dir: Path) -> None:
    presets = NOTEBOOKS["06_compare_runs"]["PRESETS"]
    for preset in presets:
        assert numbers[f"seeds/{preset}"] == 2
        assert 0.0 <= numbers[f"linear_acc/{preset}/mean"] <= 1.0 and numbers[f"linear_acc/{preset}/std"] >= 0.0
    assert "val_acc/supervised/mean" in numbers and "val_acc/lejepa/mean" not in numbers
    sweeps = [p for p in (runs_dir / "06_compare_runs").iterdir() if (p / "sweep.json").is_file()]
    assert len(sweeps) == 1
    assert len([p for p in sweeps[0].iterdir() if (p / "summary.json").is_file()]) == 2 * len(presets)
    # the notebook states its two claims in standard deviations over its three seeds; with two seeds a
    # standard deviation is too noisy to test (LeJEPA's gap measured 6.8 / 19.1 / 1.7 / 3.1 sds over the
    # seed pairs 0-1 ... 6-7), so the claims are asserted on the means, with margins measured there:
    # LeJEPA below the best by 0.296 / 0.167 / 0.229 / 0.241, the two supervised presets 0.061 / 0.000 /
    # 0.019 / 0.043 apart
    gaps = {key.split("/")[1]: value for key, value in numbers.items() if key.startswith("gap_to_best/")}
    assert set(gaps) in ({"supervised", "lejepa"}, {"stepwise-deepsup", "lejepa"}), gaps  # a supervised one is best
    acc = {p: numbers[f"linear_acc/{p}/mean"] for p in presets}
    assert max(acc.values()) - acc["lejepa"] > 0.1, acc
    assert abs(acc["supervised"] - acc["stepwise-deepsup"]) < 0.1, acc


@checks("07_pretrained_layer_by_layer")
def check_pretrained_layer_by_layer(numbers: dict, runs_dir: Path) -> None:
    models = ("vit_tiny-random", "deit_small-random")
    for model in models:
        assert (runs_dir / "07_pretrained_layer_by_layer" / model / "analysis.yaml").is_file()
    # "timm's last intermediate with norm=True is forward_features"
    assert numbers["forward_features_gap"] < 1e-5
    for model in models:
        n = {key.replace(f"/{model}", ""): value for key, value in numbers.items() if f"/{model}/" in key}
        # 1. "every block before the last is within a CKA of 0.9 of the patch embedding" (seeds 0-2: 0.9988 or more)
        assert n["cka_to_layer0/min_before_last"] > 0.9, model
        # 2. "colour far above chance (1/6) at every layer": above 1.5 x chance. Measured at these
        #    parameters, seeds 0-2: the smallest colour score over layers was 0.39, 0.68 and 0.60
        #    (vit_tiny) and 0.52, 0.58, 0.61 (deit_small); 0.25 leaves 8 of the 62 test images of margin
        assert n["factor/color/min_over_layers"] > 1.5 / 6, model
        # 3. "shape below colour at the last layer" (seeds 0-2: colour - shape >= 0.13)
        assert n["factor/shape/last_layer"] < n["factor/color/last_layer"], model
        # 4. "invariance within 0.05 of 0 at the last layer" (seeds 0-2: 0.004 to 0.009)
        assert abs(n["invariance/last_layer"]) < 0.05, model


# ---- the harness ---------------------------------------------------------------------------------


def series() -> list[str]:
    return sorted(NOTEBOOKS)


def execute(notebook: str, out_dir: Path, data_dir: Path, **extra) -> tuple[dict, Path, Path]:
    """Run ``notebook`` headless with its test parameters; return (headline numbers, runs dir, executed path)."""
    import papermill

    runs_dir = out_dir / "runs"
    executed = out_dir / f"{notebook}.ipynb"
    params = {**NOTEBOOKS[notebook], **extra, "INTERACTIVE": False, "RUNS_DIR": str(runs_dir),
              "DATA_DIR": str(data_dir)}
    papermill.execute_notebook(str(NOTEBOOK_DIR / f"{notebook}.ipynb"), str(executed), parameters=params,
                               cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False)
    path = runs_dir / notebook / "headline.json"
    assert path.is_file(), f"{notebook} wrote no {path.relative_to(out_dir)}"
    return json.loads(path.read_text()), runs_dir, executed


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")  # shared: the generated images are cached once


def test_every_notebook_of_the_series_has_an_entry_parameters_and_exercises():
    import jupytext

    for notebook in series():
        assert notebook in CHECKS, f"{notebook} has test parameters but no @checks function"
        source = NOTEBOOK_DIR / f"{notebook}.py"
        assert source.is_file() and source.with_suffix(".ipynb").is_file(), f"{notebook}: .py and .ipynb needed"
        cells = jupytext.read(source).cells
        params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{notebook}: exactly one cell tagged parameters"
        defined = {line.split("=")[0].strip() for line in params[0].source.splitlines() if "=" in line}
        missing = [p for p in (*REQUIRED_PARAMETERS, *NOTEBOOKS[notebook]) if p not in defined]
        assert not missing, f"{notebook}: the parameters cell lacks {missing}"
        assert any("solution" in c.metadata.get("tags", []) for c in cells), f"{notebook}: no solution cells"
        assert any(c.cell_type == "markdown" and "## Exercises" in c.source for c in cells), f"{notebook}: no exercises"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", series())
def test_notebook_runs_headless_and_its_phenomena_hold(notebook, tmp_path, data_dir):
    numbers, runs_dir, executed = execute(notebook, tmp_path, data_dir)
    assert numbers, f"{notebook} recorded no headline numbers"
    bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
    assert not bad, f"{notebook}: non-finite headline numbers {bad}"
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in json.loads(executed.read_text())["cells"]
                   for o in c.get("outputs", []))
    assert "plotly" in html, f"{notebook}: figures must be embedded as HTML so that they survive export"
    CHECKS[notebook](numbers, runs_dir)
