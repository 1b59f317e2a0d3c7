"""Reading curricula back from runs: traces, final values and adaptive raises."""

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.analysis import curricula
from workbench.runs import Run, write_config

ADAPTIVE = {"schedule": "adaptive", "start": 0.25, "end": 0.9, "step": 0.1, "target": 0.5, "metric": "mae/mse"}


def fake_run(tmp_path, mask_ratio, values, steps=None):
    """A run directory holding only a config and a metrics.csv whose mask-ratio column is ``values``
    (NaN rows in between, as Lightning writes validation rows)."""
    path = tmp_path / "run"
    path.mkdir()
    write_config(path, wb.make_config("mae", {"objectives.mae.params.mask_ratio": mask_ratio}))
    steps = steps or [9 + 10 * i for i in range(len(values))]
    rows = []
    for step, value in zip(steps, values):
        rows.append({"epoch": 0, "step": step, "train/mae/mse": 0.4, "train/mae/mask_ratio": value})
        rows.append({"epoch": 0, "step": step, "val/loss": 0.5})  # a row without the column
    pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)
    return Run(path)


def test_trace_and_final_value(tmp_path):
    run = fake_run(tmp_path, {"schedule": "linear", "start": 0.25, "end": 0.75}, [0.25, 0.5, 0.75])
    t = curricula.trace(run, "mae", "mask_ratio")
    assert t["step"].tolist() == [9, 19, 29] and t["value"].tolist() == [0.25, 0.5, 0.75]
    assert curricula.final_value(run, "mae", "mask_ratio") == 0.75
    assert curricula.column("mae", "mask_ratio") == "train/mae/mask_ratio"


def test_a_constant_parameter_is_its_own_final_value(tmp_path):
    run = fake_run(tmp_path, 0.75, [])
    assert curricula.final_value(run, "mae", "mask_ratio") == 0.75


def test_adaptive_raises_are_counted_in_steps_with_a_partial_last_step(tmp_path):
    # start 0.25 -> 0.35 -> (two raises in one logging interval) 0.55 -> ... 0.85 -> end 0.9 (half a step)
    values = [0.25, 0.35, 0.55, 0.55, 0.65, 0.85, 0.9, 0.9]
    run = fake_run(tmp_path, ADAPTIVE, values)
    # raises: 1 + 2 + 1 + 2 + 1 (the partial step to the end) = 7; the level equals max_level of the schedule
    assert curricula.adaptive_moves(run, "mae", "mask_ratio") == {"raises": 7, "eases": 0, "level": 7}
    assert wb.schedules.build_schedule(ADAPTIVE, "x").max_level == 7


def test_one_move_per_logged_change_with_a_small_step_in_float32(tmp_path):
    # step 0.01 from 0.25 to 0.9: 65 single raises, each value logged as float32 (as Lightning does)
    small = {**ADAPTIVE, "step": 0.01}
    values = [float(np.float32(0.25 + 0.01 * k)) for k in range(66)]
    run = fake_run(tmp_path, small, values)
    assert curricula.adaptive_moves(run, "mae", "mask_ratio") == {"raises": 65, "eases": 0, "level": 65}


def test_a_raise_before_the_first_logged_row_and_eases_are_counted(tmp_path):
    run = fake_run(tmp_path, {**ADAPTIVE, "ease": True}, [0.35, 0.45, 0.35, 0.45, 0.25])
    # 0.25 (start) -> 0.35 -> 0.45 -> 0.35 -> 0.45 -> 0.25: raises 1 + 1 + 1, eases 1 + 2
    assert curricula.adaptive_moves(run, "mae", "mask_ratio") == {"raises": 3, "eases": 3, "level": 0}


def test_a_falling_adaptive_schedule_counts_moves_toward_its_end(tmp_path):
    falling = {**ADAPTIVE, "start": 0.7, "end": 0.2, "step": 0.25}
    run = fake_run(tmp_path, falling, [0.7, 0.45, 0.2])
    assert curricula.adaptive_moves(run, "mae", "mask_ratio") == {"raises": 2, "eases": 0, "level": 2}


def test_clear_errors(tmp_path):
    run = fake_run(tmp_path, {"schedule": "cosine", "start": 0.25, "end": 0.75}, [0.25, 0.75])
    with pytest.raises(ValueError, match="objectives.mae.params.mask_ratio .* not an adaptive schedule"):
        curricula.adaptive_moves(run, "mae", "mask_ratio")
    with pytest.raises(KeyError, match="no objective 'ijepa'; it has mae"):
        curricula.final_value(run, "ijepa", "mask_ratio")
    with pytest.raises(KeyError, match="no 'coarsest' set"):
        curricula.final_value(run, "mae", "coarsest")
    with pytest.raises(KeyError, match="'train/mae/coarsest' is not in .*columns of mae: train/mae/mask_ratio, "):
        curricula.trace(run, "mae", "coarsest")


def test_moves_read_from_a_trained_run_match_the_schedule_state_in_its_checkpoint(tmp_path):
    # target 100: every check passes, so the ratio climbs one step per check; checks are due every
    # 2 steps but happen only at logging intervals (every 3 steps) and epoch ends.
    spec = {**ADAPTIVE, "target": 100.0, "every": 2, "step": 0.05, "end": 0.6}
    run = wb.fit(preset="mae", overrides={
        "data.shapes.num_images": 300, "data.batch_size": 32, "model.patch_size": 8, "model.width": 16,
        "model.depth": 1, "model.heads": 2, "trainer.max_steps": 14, "trainer.log_every_n_steps": 3,
        "diagnostics.enabled": False, "objectives.mae.params.mask_ratio": spec, "runs_dir": str(tmp_path),
        "name": "adaptive"}, cache_dir=tmp_path / "data")
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["schedules"]
    saved = state["objectives.mae.params.mask_ratio"]
    moves = curricula.adaptive_moves(run, "mae", "mask_ratio")
    assert saved["level"] > 1 and moves == {"raises": saved["level"], "eases": 0, "level": saved["level"]}
    assert curricula.final_value(run, "mae", "mask_ratio") == pytest.approx(0.25 + 0.05 * saved["level"])


def test_traces_of_several_runs_draw_a_constant_as_a_flat_line(tmp_path):
    scheduled = fake_run(tmp_path, {"schedule": "linear", "start": 0.25, "end": 0.75}, [0.25, 0.75])
    (tmp_path / "other").mkdir()
    fixed = fake_run(tmp_path / "other", 0.75, [0.75, 0.75], steps=[9, 39])
    table = curricula.traces({"scheduled": scheduled, "fixed": fixed}, "mae", "mask_ratio")
    assert table.columns.tolist() == ["run", "step", "value"]
    assert table[table.run == "scheduled"]["value"].tolist() == [0.25, 0.75]
    # no summary.json: the last step comes from metrics.csv
    assert table[table.run == "fixed"][["step", "value"]].values.tolist() == [[0, 0.75], [39, 0.75]]
