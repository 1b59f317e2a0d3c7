"""Invalid configurations and inputs: each raises ConfigError / DataError naming the field (or the
path), the bad value and what is allowed, and no run directory is left behind."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import workbench as wb
from workbench.data.idx import write_idx
from workbench.errors import ConfigError, DataError

TINY = [
    "data.shapes.num_images=400", "data.batch_size=32", "model.width=16", "model.depth=2", "model.heads=2",
    "model.patch_size=8", "trainer.max_epochs=1", "diagnostics.enabled=false",
]


@dataclass
class Case:
    id: str
    overrides: list[str] = field(default_factory=list)
    preset: str | None = "supervised"
    # setup(tmp_path) -> extra overrides (files written for the data cases, a taken run name, ...)
    setup: Callable[[Path], list[str]] | None = None
    # call(tmp_path, overrides) replaces wb.fit(preset=..., overrides=...) (dict / YAML configs)
    call: Callable[[Path, list[str]], Any] | None = None
    error: type = ConfigError
    field: str | None = None  # ConfigError.field, exactly
    value: Any = None  # repr(value) must be in the message (ConfigError)
    allowed: str = ""  # a fragment of what is allowed, in the message
    fragments: Callable[[Path], list[str]] = lambda tmp: []  # more fragments (paths), for DataError


# ---- data set-ups ------------------------------------------------------------------------------


def truncated_fashion_mnist(tmp: Path) -> list[str]:
    root = tmp / "fmnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        write_idx(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])  # a download cut short
    return ["data.name=fashion_mnist", f"data.root={root}", "model.patch_size=7"]


def corrupt_cifar10(tmp: Path) -> list[str]:
    directory = tmp / "cifar" / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [n.encode() for n in "abcdefghij"]
    (directory / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    batch = directory / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:200])
    return ["data.name=cifar10", f"data.root={tmp / 'cifar'}"]


def taken_name(tmp: Path) -> list[str]:
    (tmp / "runs" / "taken").mkdir(parents=True)
    return ["name=taken"]


def yaml_config(text: str) -> Callable[[Path, list[str]], Any]:
    def call(tmp: Path, overrides: list[str]) -> Any:
        path = tmp / "config.yaml"
        path.write_text(text)
        return wb.fit(wb.RunConfig.from_yaml(path), overrides=overrides, cache_dir=tmp / "data")

    return call


def dict_config(data: dict) -> Callable[[Path, list[str]], Any]:
    return lambda tmp, overrides: wb.fit(data, overrides=overrides, cache_dir=tmp / "data")


CASES = [
    # objectives
    Case("unknown-objective", ["objectives.nope.weight=1"], field="objectives.nope", value="nope",
         allowed="a registered objective"),
    Case("unknown-objective-kind", ["objectives.x.kind=nope"], field="objectives.x.kind", value="nope",
         allowed="a registered objective"),
    Case("unknown-preset", preset="nope", field="preset", value="nope", allowed="one of supervised"),
    Case("negative-weight", ["objectives.supervised.weight=-1"], field="objectives.supervised.weight", value=-1.0,
         allowed=">= 0"),
    Case("negative-weight-schedule", ["objectives.supervised.weight={schedule: linear, start: 1.0, end: -0.5}"],
         field="objectives.supervised.weight.end", value=-0.5, allowed=">= 0"),
    Case("layer-out-of-range", ["objectives.supervised.layers=[1, 5]"], field="objectives.supervised.layers",
         value=[1, 5], allowed="layer indices in 0..2"),
    Case("layer-spec-unknown", ["objectives.supervised.layers=first"], field="objectives.supervised.layers",
         value="first", allowed="'last', 'all' or a list"),
    Case("empty-objectives-all-disabled", ["objectives.supervised.enabled=false"], field="objectives",
         value=["supervised"], allowed="at least one enabled objective"),
    Case("empty-objectives-removed", ["objectives.supervised=null"], field="objectives", value=[],
         allowed="at least one enabled objective"),
    Case("unknown-objective-param", ["objectives.supervised.params.smoothing=0.1"],
         field="objectives.supervised.params.smoothing", value=0.1, allowed="unknown parameter; allowed: label_smoothing"),
    Case("schedule-on-fixed-param", ["objectives.dino.params.out_dim={schedule: linear, start: 64, end: 128}"],
         preset="dino", field="objectives.dino.params.out_dim", value={"schedule": "linear", "start": 64, "end": 128},
         allowed="schedulable: teacher_temp"),
    # mask ratios: [0, 1) for MAE and both ladders, numbers and schedules
    Case("mae-mask-ratio-above-1", ["objectives.mae.params.mask_ratio=1.2"], preset="mae",
         field="objectives.mae.params.mask_ratio", value=1.2, allowed="[0, 1)"),
    Case("mae-mask-ratio-negative", ["objectives.mae.params.mask_ratio=-0.1"], preset="mae",
         field="objectives.mae.params.mask_ratio", value=-0.1, allowed="[0, 1)"),
    Case("mae-mask-ratio-one", ["objectives.mae.params.mask_ratio=1.0"], preset="mae",
         field="objectives.mae.params.mask_ratio", value=1.0, allowed="[0, 1)"),
    Case("mae-mask-ratio-schedule-end", ["objectives.mae.params.mask_ratio={schedule: cosine, start: 0.5, end: 1.5}"],
         preset="mae", field="objectives.mae.params.mask_ratio.end", value=1.5, allowed="[0, 1)"),
    Case("latent-ladder-mask-ratio", ["objectives.ladder.params.mask_ratio=1.0"], preset="stepwise-latent-ladder",
         field="objectives.ladder.params.mask_ratio", value=1.0, allowed="[0, 1)"),
    Case("pixel-ladder-mask-ratio-adaptive",
         ["objectives.ladder.params.mask_ratio={schedule: adaptive, start: -0.2, end: 0.9, step: 0.1, target: 1.0, "
          "metric: ladder/mse_l1}"], preset="stepwise-pixel-ladder",
         field="objectives.ladder.params.mask_ratio.start", value=-0.2, allowed="[0, 1)"),
    # objective parameters: temperatures > 0, loss coefficients >= 0, sizes >= 1, choices
    Case("dino-out-dim-zero", ["objectives.dino.params.out_dim=0"], preset="dino",
         field="objectives.dino.params.out_dim", value=0, allowed="an integer >= 1"),
    Case("dino-bottleneck-not-integer", ["objectives.dino.params.bottleneck=32.5"], preset="dino",
         field="objectives.dino.params.bottleneck", value=32.5, allowed="an integer >= 1"),
    Case("dino-student-temp-zero", ["objectives.dino.params.student_temp=0"], preset="dino",
         field="objectives.dino.params.student_temp", value=0, allowed="a softmax temperature > 0"),
    Case("dino-student-temp-negative", ["objectives.dino.params.student_temp=-0.1"], preset="dino",
         field="objectives.dino.params.student_temp", value=-0.1, allowed="> 0"),
    Case("dino-teacher-temp-zero", ["objectives.dino.params.teacher_temp=0.0"], preset="dino",
         field="objectives.dino.params.teacher_temp", value=0.0, allowed="a softmax temperature > 0"),
    Case("dino-teacher-temp-schedule-start",
         ["objectives.dino.params.teacher_temp={schedule: warmup, start: -0.04, end: 0.07, warmup: 0.3}"],
         preset="dino", field="objectives.dino.params.teacher_temp.start", value=-0.04, allowed="> 0"),
    Case("dino-center-momentum-above-1", ["objectives.dino.params.center_momentum=1.5"], preset="dino",
         field="objectives.dino.params.center_momentum", value=1.5, allowed="in [0, 1]"),
    Case("simclr-temperature-negative", ["objectives.simclr.params.temperature=-0.5"], preset="simclr",
         field="objectives.simclr.params.temperature", value=-0.5, allowed="a softmax temperature > 0"),
    Case("toy-temperature-zero", ["objectives.toy.params.temperature=0"], preset="toy-collapse",
         field="objectives.toy.params.temperature", value=0, allowed="a softmax temperature > 0"),
    Case("vicreg-negative-coefficient", ["objectives.vicreg.params.var_weight=-25.0"], preset="vicreg",
         field="objectives.vicreg.params.var_weight", value=-25.0, allowed="a loss coefficient >= 0"),
    Case("vicreg-coefficient-not-a-number", ["objectives.vicreg.params.cov_weight=high"], preset="vicreg",
         field="objectives.vicreg.params.cov_weight", value="high", allowed="a loss coefficient >= 0"),
    Case("barlow-negative-lambda", ["objectives.barlow.params.lambd=-0.005"], preset="barlow",
         field="objectives.barlow.params.lambd", value=-0.005, allowed=">= 0"),
    Case("projector-dim-zero", ["objectives.vicreg.params.dim=0"], preset="vicreg",
         field="objectives.vicreg.params.dim", value=0, allowed="an integer >= 1"),
    Case("projector-hidden-negative", ["objectives.lejepa.params.hidden=-4"], preset="lejepa",
         field="objectives.lejepa.params.hidden", value=-4, allowed="an integer >= 1 or null"),
    Case("projector-layers-negative", ["objectives.simclr.params.proj_layers=-1"], preset="simclr",
         field="objectives.simclr.params.proj_layers", value=-1, allowed="an integer >= 0"),
    Case("projector-batch-norm-not-bool", ["objectives.barlow.params.batch_norm=sometimes"], preset="barlow",
         field="objectives.barlow.params.batch_norm", value="sometimes", allowed="true or false"),
    Case("projector-pool-unknown", ["objectives.vicreg.params.pool=max"], preset="vicreg",
         field="objectives.vicreg.params.pool", value="max", allowed="'cls', 'mean' or null"),
    Case("sigreg-directions-zero", ["objectives.lejepa.params.directions=0"], preset="lejepa",
         field="objectives.lejepa.params.directions", value=0, allowed="an integer >= 1"),
    Case("lejepa-lam-above-1", ["objectives.lejepa.params.lam=1.5"], preset="lejepa",
         field="objectives.lejepa.params.lam", value=1.5, allowed="a number in [0, 1]"),
    Case("anticollapse-directions-zero", ["objectives.ac.kind=anticollapse", "objectives.ac.params.directions=0"],
         field="objectives.ac.params.directions", value=0, allowed="an integer >= 1"),
    Case("label-smoothing-one", ["objectives.supervised.params.label_smoothing=1.0"],
         field="objectives.supervised.params.label_smoothing", value=1.0, allowed="a number in [0, 1)"),
    Case("latent-ladder-predictor-width-not-multiple-of-heads", ["objectives.ladder.params.predictor_width=30"],
         preset="stepwise-latent-ladder", field="objectives.ladder.params.predictor_width", value=30,
         allowed="a positive multiple of 4"),
    Case("latent-ladder-k-not-integer", ["objectives.ladder.params.target=topk", "objectives.ladder.params.k=1.5"],
         preset="stepwise-latent-ladder", field="objectives.ladder.params.k", value=1.5, allowed="an integer in 1..2"),
    Case("ijepa-predictor-depth-negative", ["objectives.ijepa.params.predictor_depth=-1"], preset="ijepa",
         field="objectives.ijepa.params.predictor_depth", value=-1, allowed="an integer >= 0"),
    Case("pixel-ladder-coarsest-below-one", ["objectives.ladder.params.coarsest=0.5"],
         preset="stepwise-pixel-ladder", field="objectives.ladder.params.coarsest", value=0.5, allowed=">= 1"),
    Case("mae-decoder-width-zero", ["objectives.mae.params.decoder_width=0"], preset="mae",
         field="objectives.mae.params.decoder_width", value=0, allowed="a positive multiple of 4"),
    Case("recon-hidden-zero", ["objectives.recon.params.hidden=0"], preset="coherent",
         field="objectives.recon.params.hidden", value=0, allowed="an integer >= 1"),
    # model
    Case("patch-size-not-dividing", ["model.patch_size=5"], field="model.patch_size", value=5,
         allowed="a divisor of the image size 32"),
    Case("heads-not-dividing-width", ["model.heads=3"], field="model.width", value=16,
         allowed="a positive multiple of model.heads=3"),
    # teacher and views
    Case("momentum-schedule-missing-end", ["teacher.momentum={schedule: cosine, start: 0.996}"], preset="dino",
         field="teacher.momentum", value={"schedule": "cosine", "start": 0.996}, allowed="missing end"),
    Case("momentum-schedule-unknown", ["teacher.momentum={schedule: cosin, start: 0.996, end: 1.0}"], preset="dino",
         field="teacher.momentum.schedule", value="cosin", allowed="one of constant, linear, cosine"),
    Case("momentum-above-1", ["teacher.momentum=1.5"], preset="dino", field="teacher.momentum", value=1.5,
         allowed="[0, 1]"),
    Case("momentum-schedule-end-above-1", ["teacher.momentum={schedule: cosine, start: 0.996, end: 1.2}"],
         preset="dino", field="teacher.momentum.end", value=1.2, allowed="[0, 1]"),
    Case("view-probability", ["views.flip=1.5"], preset="lejepa", field="views.flip", value=1.5,
         allowed="a probability in [0, 1]"),
    Case("view-scale-order", ["views.global_scale=[0.9, 0.1]"], preset="lejepa", field="views.global_scale",
         value=[0.9, 0.1], allowed="0 < low <= high <= 1"),
    Case("view-recipe-unknown", ["views.recipe=byol"], preset="lejepa", field="views.recipe", value="byol",
         allowed="'symmetric' (every crop the same augmentations) or 'dino'"),
    Case("view-hue-above-half", ["views.hue=0.7"], preset="lejepa", field="views.hue", value=0.7,
         allowed="a hue shift in [0, 0.5] turns"),
    Case("view-brightness-negative", ["views.brightness=-0.4"], preset="dino", field="views.brightness", value=-0.4,
         allowed="a jitter strength >= 0"),
    Case("view-saturation-not-a-number", ["views.saturation=strong"], preset="lejepa", field="views.saturation",
         value="strong", allowed="expected a number"),
    Case("view-blur-sigma-order", ["views.blur_sigma=[2.0, 0.1]"], preset="lejepa", field="views.blur_sigma",
         value=[2.0, 0.1], allowed="0 < low <= high: sigmas in pixels"),
    Case("view-global-ratio-zero", ["views.global_ratio=[0, 1.5]"], preset="lejepa", field="views.global_ratio",
         value=[0.0, 1.5], allowed="0 < low <= high: aspect ratios (width / height)"),
    Case("view-local-ratio-one-number", ["views.local_ratio=[1.0]"], preset="dino", field="views.local_ratio",
         value=[1.0], allowed="[low, high]"),
    Case("ijepa-targets-exceed-grid", ["objectives.ijepa.params.num_targets=12"], preset="ijepa",
         field="objectives.ijepa.params.num_targets", value=12, allowed="4 x 4 patch grid"),
    # data
    Case("bad-data-label", ["data.label=colour"], field="data.label", value="colour",
         allowed="a categorical shapes factor: color, texture, shape"),
    Case("unknown-dataset", ["data.name=imagenet"], field="data.name", value="imagenet", allowed="one of shapes"),
    Case("image-folder-without-size", ["data.name=image_folder"], setup=lambda tmp: [f"data.root={tmp}"],
         field="data.image_size", value=None, allowed="an integer side for image_folder"),
    Case("missing-dataset-root", setup=lambda tmp: ["data.name=cifar10", f"data.root={tmp / 'nowhere'}"],
         error=DataError, allowed="To obtain it",
         fragments=lambda tmp: [str(tmp / "nowhere" / "cifar-10-batches-py" / "batches.meta")]),
    Case("corrupt-idx-file", setup=truncated_fashion_mnist, error=DataError, allowed="corrupt or truncated",
         fragments=lambda tmp: [str(tmp / "fmnist" / "train-images-idx3-ubyte"), "obtain the file again"]),
    Case("corrupt-cifar-file", setup=corrupt_cifar10, error=DataError, allowed="corrupt or truncated",
         fragments=lambda tmp: [str(tmp / "cifar" / "cifar-10-batches-py" / "data_batch_2"), "obtain the file again"]),
    # overrides and config files
    Case("override-without-equals", ["model.depth"], field="override", value="model.depth",
         allowed="the form key.path=value"),
    Case("override-empty-key-part", ["model..depth=3"], field="override", value="model..depth=3",
         allowed="the form key.path=value"),
    Case("unknown-override-key", ["model.depht=3"], field="model.depht", value=3, allowed="unknown key"),
    Case("unknown-override-section", ["modle.depth=3"], field="modle", value=3, allowed="unknown key"),
    Case("string-for-int-override", ["trainer.max_epochs=many"], field="trainer.max_epochs", value="many",
         allowed="expected an integer"),
    Case("string-for-int-yaml", call=yaml_config("model:\n  depth: two\n"), field="model.depth", value="two",
         allowed="expected an integer"),
    Case("broken-yaml", call=yaml_config("model: [depth\n"), field="config", value=None, allowed="valid YAML"),
    Case("unknown-key-in-dict-config", call=dict_config({"model": {"depth": 2, "width_": 8}}), field="model.width_",
         value=8, allowed="unknown key"),
    # trainer and run
    Case("bad-precision", ["trainer.precision=fp8"], field="trainer.precision", value="fp8",
         allowed="one of auto, 32-true"),
    Case("invalid-run-name", ["name=my run/1"], field="name", value="my run/1", allowed="no slashes or spaces"),
    Case("existing-run-name", setup=taken_name, field="name", value="taken", allowed="a run name not used yet"),
]


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_input_is_named_and_writes_nothing(case: Case, tmp_path):
    runs = tmp_path / "runs"
    extra = case.setup(tmp_path) if case.setup else []
    before = sorted(p.relative_to(runs) for p in runs.rglob("*")) if runs.exists() else []
    overrides = TINY + extra + case.overrides + [f"runs_dir={runs}"]
    with pytest.raises(case.error) as info:
        if case.call is not None:
            case.call(tmp_path, overrides)
        else:
            wb.fit(preset=case.preset, overrides=overrides, cache_dir=tmp_path / "data")
    message = str(info.value)
    if case.error is ConfigError:
        assert info.value.field == case.field, message
        if case.value is not None:
            assert repr(case.value) in message, message
        assert message.startswith(f"{case.field}="), message
    assert case.allowed in message, message
    for fragment in case.fragments(tmp_path):
        assert fragment in message, message
    after = sorted(p.relative_to(runs) for p in runs.rglob("*")) if runs.exists() else []
    assert after == before, f"the failed call wrote {set(after) - set(before)}"
