"""The objective machinery: needs computed once, the EMA teacher, schedules, validation."""

import pytest
import torch

import workbench as wb
from workbench.data import DataInfo
from workbench.errors import ConfigError
from workbench.models.teacher import EMATeacher
from workbench.training.module import WorkbenchModule


def info(channels=3, size=32):
    return DataInfo(name="shapes", channels=channels, image_size=size, num_classes=4, classes=("a", "b", "c", "d"),
                    mean=(0.5,) * channels, std=(0.25,) * channels)


def module_for(overrides, preset=None):
    base = ["model.patch_size=8", "model.width=32", "model.depth=3", "model.heads=4", "views.local_crops=2"]
    config = wb.make_config(preset, base + overrides)
    return WorkbenchModule(config, info())


def batch(n=6):
    g = torch.Generator().manual_seed(0)
    return {"images": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
            "labels": torch.randint(0, 4, (n,), generator=g), "index": torch.arange(n)}


def test_each_need_is_computed_once_per_step():
    module = module_for(["objectives.dino.weight=1", "objectives.lejepa.weight=1", "objectives.mae.weight=1",
                         "objectives.ladder.kind=latent_ladder"], preset="supervised")
    calls = []
    student_forward = module.backbone.forward
    teacher_forward = module.teacher.model.forward
    module.backbone.forward = lambda x, keep=None: calls.append(("student", x.shape[0], keep is not None)) or student_forward(x, keep)
    module.teacher.model.forward = lambda x, keep=None: calls.append(("teacher", x.shape[0], False)) or teacher_forward(x, keep)
    total, values, _ = module.compute_losses(batch(6))
    assert torch.isfinite(total)
    # student: clean (supervised), global (dino + lejepa: shared), local (shared), one masked forward per
    # masked objective (mae, ladder); teacher: global (dino), clean (latent ladder)
    assert sorted(calls) == sorted([
        ("student", 6, False), ("student", 12, False), ("student", 12, False), ("student", 6, True),
        ("student", 6, True), ("teacher", 12, False), ("teacher", 6, False),
    ])
    assert {"supervised/ce", "dino/ce", "lejepa/sigreg", "lejepa/invariance", "mae/mse"} <= set(values)


def test_one_teacher_is_shared_and_follows_the_ema_rule():
    module = module_for([], preset="dino")
    assert isinstance(module.teacher, EMATeacher)
    with torch.no_grad():
        for p in module.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in module.teacher.model.parameters()]
    module.teacher.update(module.backbone, momentum=0.9)
    for t0, t1, s in zip(before, module.teacher.model.parameters(), module.backbone.parameters()):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * s)
    module.train()
    assert not module.teacher.model.training, "the teacher always runs in eval mode"
    assert not any(p.requires_grad for p in module.teacher.parameters())


def test_no_teacher_when_no_objective_needs_one():
    assert module_for([], preset="lejepa").teacher is None


def test_scheduled_weight_and_parameter_are_reported_at_the_current_step():
    module = module_for(["objectives.mae.weight={schedule: linear, start: 0.0, end: 1.0}",
                         "objectives.mae.params.mask_ratio={schedule: linear, start: 0.5, end: 0.75}"], preset="supervised")
    module.total_steps = 100
    schedule = module.weight_schedules["mae"]
    assert schedule.value(0, 100) == pytest.approx(0.0) and schedule.value(50, 100) == pytest.approx(0.5)
    assert module.objectives["mae"].schedules["mask_ratio"].value(100, 100) == pytest.approx(0.75)


def test_a_schedule_on_a_build_time_parameter_is_refused():
    with pytest.raises(ConfigError, match="objectives.vicreg.params.dim"):
        wb.make_config("vicreg", ["objectives.vicreg.params.dim={schedule: linear, start: 8, end: 16}"])


@pytest.mark.parametrize("overrides, field", [
    (["objectives.ijepa.params.num_targets=12"], "objectives.ijepa.params.num_targets"),
    (["objectives.ladder.params.direction=sideways"], "objectives.ladder.params.direction"),
    (["objectives.dino.layers=[7]"], "objectives.dino.layers"),
    (["views.global_crops=1"], "views.global_crops"),
    (["teacher.momentum={schedule: bogus}"], "teacher.momentum"),
])
def test_impossible_combinations_fail_at_validation(overrides, field):
    presets = {"ijepa": "ijepa", "ladder": "stepwise-pixel-ladder", "dino": "dino"}
    preset = next((p for k, p in presets.items() if k in overrides[0]), "supervised")
    with pytest.raises(ConfigError) as info_:
        wb.make_config(preset, ["model.patch_size=8", "model.depth=3", "model.width=32"] + overrides)
    assert info_.value.field.startswith(field)


def test_masked_forward_sees_only_the_kept_patches():
    module = module_for([], preset="mae")
    b = batch(4)
    generator = module.generator("train", 0)
    views = module.make_views(b, generator)
    from workbench.objectives.base import StepInputs

    inputs = StepInputs(batch=b, views=views, student={}, generator=generator, sample_generator=generator)
    mask = module.objectives["mae"].make_mask(4, inputs)
    assert mask.keep.shape == (4, 4)  # 16 patches, 75% hidden
    assert module.backbone(views["clean"], keep=mask.keep).layers[-1].shape == (4, 1 + 4, 32)


def test_mae_predicts_exactly_the_hidden_patches():
    module = module_for([], preset="mae")
    b = batch(4)
    generator = module.generator("train", 0)
    from workbench.objectives.base import StepInputs

    inputs = StepInputs(batch=b, views=module.make_views(b, generator), student={}, sample_generator=generator)
    mask = module.objectives["mae"].make_mask(4, inputs)
    for keep, targets, hidden in zip(mask.keep, mask.targets, mask.hidden):
        assert set(targets.tolist()) == set(hidden.nonzero().flatten().tolist())
        assert not set(keep.tolist()) & set(targets.tolist())


ADAPTIVE = ["data.shapes.num_images=600", "data.batch_size=32", "model.patch_size=8", "model.width=32",
            "model.depth=2", "model.heads=4", "trainer.max_steps=20", "trainer.log_every_n_steps=5"]


@pytest.mark.parametrize("target, expected_end", [(100.0, 0.7), (0.0, 0.3)])
def test_adaptive_mask_ratio_rises_only_while_the_loss_stays_below_target(target, expected_end, tmp_path):
    spec = f"{{schedule: adaptive, start: 0.3, end: 0.9, step: 0.1, target: {target}, metric: mae/mse, every: 5}}"
    run = wb.fit(preset="mae", overrides=ADAPTIVE + [f"objectives.mae.params.mask_ratio={spec}",
                                                     f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data")
    ratio = run.curve("train/mae/mask_ratio")["value"].tolist()
    assert ratio[0] == pytest.approx(0.3)
    assert ratio == sorted(ratio)
    # checks at steps 5, 10, 15 (and 20, after the last logged value) each raise the ratio by 0.1
    assert ratio[-1] == pytest.approx(expected_end if target == 0.0 else 0.6)
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["schedules"]
    assert state["objectives.mae.params.mask_ratio"]["value"] == pytest.approx(expected_end)


def test_coarser_targets_keep_constant_images_and_fit_small_images():
    from workbench.objectives.reconstruction import coarsen

    flat = torch.full((2, 3, 32, 32), 0.3)
    for kind in ("pyramid", "blur"):
        torch.testing.assert_close(coarsen(flat, 4.0, kind), flat)
    # an 8 x 8 image with the coarsest blur (sigma 4): the kernel is capped to the image
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = coarsen(x, 8.0, "blur")
    assert y.shape == x.shape and y.std() < x.std()
    torch.testing.assert_close(coarsen(x, 1.0, "blur"), x)  # factor 1 is the image itself


def test_joint_embedding_projector_normalises_every_crop_with_one_batch_statistic():
    """LeJEPA's projector (Linear-BatchNorm-ReLU) runs once over the global and local crops together,
    as a single call over all views does in the official code: one batch mean for all crops, one
    running-statistics update per step."""
    from workbench.objectives.base import StepInputs
    from workbench.objectives.heads import GlobalBatchNorm

    module = module_for(["views.global_crops=2"], preset="lejepa").train()
    objective = module.objectives["lejepa"]
    b = batch(6)
    generator = module.generator("train", 0)
    views = module.make_views(b, generator)
    inputs = StepInputs(batch=b, views=views, student={v: module.backbone(views[v]) for v in ("global", "local")},
                        generator=generator, sample_generator=generator)
    norm = next(m for m in objective.projector.modules() if isinstance(m, GlobalBatchNorm))
    seen = []
    norm.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    before = norm.running_mean.clone()
    z = objective.embeddings(inputs)
    assert [t.shape[0] for t in z] == [6] * 4  # 2 global + 2 local crops of 6 images each
    (x,) = seen  # one call, over all 24 rows
    assert x.shape[0] == 24
    torch.testing.assert_close(norm.running_mean, 0.9 * before + 0.1 * x.mean(0))
    # every crop's output is the projector's output on its rows of that one call
    pooled = torch.cat([inputs.student[v].pooled(objective.layers[-1], objective.pool) for v in ("global", "local")])
    norm.momentum = 0.0  # leave the running statistics alone for the reference call
    torch.testing.assert_close(torch.cat(z), objective.projector(pooled))


def test_training_monitors_read_a_whole_image_view_never_a_masked_forward():
    from workbench.diagnostics import rankme

    def monitored(preset):
        module = module_for(["diagnostics.monitor_every_n_steps=1"], preset=preset)
        module.writes_logs = lambda: True  # a logging step
        seen = {}
        forward = module.backbone.forward
        module.backbone.forward = lambda x, keep=None: seen.setdefault(keep is None, forward(x, keep))
        _, _, metrics = module.compute_losses(batch(6), "train")
        return metrics, seen, module

    metrics, seen, module = monitored("supervised")  # the clean view
    clean = seen[True]
    assert torch.isclose(metrics["monitor/rankme"], rankme(clean.pooled(clean.depth, module.backbone.pool).float()))
    metrics, seen, _ = monitored("ijepa")  # only a masked student forward: no monitor
    assert True not in seen and not any(k.startswith("monitor/") for k in metrics)
