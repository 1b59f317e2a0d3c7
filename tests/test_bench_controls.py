"""``python -m workbench bench --controls``: the controls' arithmetic on hand-worked scores, and the
command end to end at toy sizes."""

import json
import math

import pytest

from workbench.bench import controls
from workbench.cli import build_parser

T2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom


def seed_scores(shape=(0.7, 0.8, 0.75), color=(0.5, 0.5, 0.5), initial=(0.6, 0.7, 0.65), seconds=100.0):
    return [{"shape": s, "color": c, "initial_color": i, "embedding_color_change": -0.2 - 0.1 * k, "seconds": seconds}
            for k, (s, c, i) in enumerate(zip(shape, color, initial))]


def all_scores(**changes):
    scores = {name: seed_scores() for name in controls.JOINT_EMBEDDING}
    scores["vicreg+recon"] = seed_scores(color=(0.8, 0.6, 0.7))
    scores["vicreg+mae"] = seed_scores(color=(0.5, 0.6, 0.4))
    scores.update(changes)
    return scores


def by_key(rows):
    return {(r["control"], r["recipe"]): r for r in rows}


def test_the_shape_control_is_the_seed_mean_against_the_target_with_its_t_interval():
    rows = by_key(controls.evaluate(all_scores()))
    a = rows[("a", "vicreg")]
    # shape 0.7, 0.8, 0.75: mean 0.75, sd 0.05, half width t * 0.05 / sqrt(3)
    assert a["mean"] == pytest.approx(0.75)
    assert a["half_width"] == pytest.approx(T2 * 0.05 / math.sqrt(3))
    assert a["n"] == 3 and a["values"] == [0.7, 0.8, 0.75] and a["holds"]
    assert [r["recipe"] for r in controls.evaluate(all_scores()) if r["control"] == "a"] == list(controls.JOINT_EMBEDDING)


def test_a_shape_control_fails_below_the_target_or_over_the_time_budget():
    low = by_key(controls.evaluate(all_scores(dino=seed_scores(shape=(0.3, 0.35, 0.32)))))
    assert not low[("a", "dino")]["holds"] and low[("a", "lejepa")]["holds"]
    slow = all_scores(lejepa=seed_scores(seconds=controls.MAX_RUN_SECONDS + 1))
    judged = by_key(controls.evaluate(slow))[("a", "lejepa")]
    assert not judged["holds"] and judged["in_time"] is False and judged["seconds"] == controls.MAX_RUN_SECONDS + 1
    # runs that shared the cores: the time is reported, not judged
    shared = by_key(controls.evaluate(slow, judge_time=False))[("a", "lejepa")]
    assert shared["holds"] and shared["in_time"] is None
    assert "time not judged" in controls.markdown([shared])


def test_the_colour_controls_pair_each_run_with_its_untrained_network_and_with_the_same_seed():
    rows = by_key(controls.evaluate(all_scores()))
    b = rows[("b", "vicreg")]
    # colour 0.5 against 0.6, 0.7, 0.65: changes -0.1, -0.2, -0.15 (mean -0.15, sd 0.05)
    assert b["values"] == pytest.approx([-0.1, -0.2, -0.15])
    assert b["high"] == pytest.approx(-0.15 + T2 * 0.05 / math.sqrt(3)) and b["holds"]
    assert rows[("b'", "vicreg")]["values"] == pytest.approx([-0.2, -0.3, -0.4])
    recon = rows[("c", "vicreg+recon")]
    # 0.8, 0.6, 0.7 minus vicreg's 0.5: +0.3, +0.1, +0.2 (sd 0.1): low = 0.2 - t * 0.1 / sqrt(3) < 0
    assert recon["values"] == pytest.approx([0.3, 0.1, 0.2])
    assert recon["low"] == pytest.approx(0.2 - T2 * 0.1 / math.sqrt(3)) and not recon["holds"]
    assert rows[("c", "vicreg+mae")]["values"] == pytest.approx([0.0, 0.1, -0.1])


def test_the_markdown_table_has_a_line_per_control():
    rows = controls.evaluate(all_scores())
    lines = controls.markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| a | vicreg | shape at the last layer | >= 0.7, each run <= 240 s | 0.750 [")


def test_the_command_line_reads_the_seeds_and_jobs():
    args = build_parser().parse_args(["bench", "--controls", "--seeds", "0-3", "--jobs", "1"])
    assert args.controls and args.seeds == "0-3" and args.jobs == 1


@pytest.mark.slow
def test_the_controls_run_end_to_end_at_toy_sizes(tmp_path):
    out = tmp_path / "controls.json"
    # one seed keeps it short: the rows are there, each with n = 1 (an unbounded interval)
    assert controls.main(seeds=[3], jobs=1, quick=True, out=str(out), runs_dir=tmp_path / "runs",
                         data_dir=tmp_path / "data") == 0
    rows = json.loads(out.read_text())
    assert {(r["control"], r["recipe"]) for r in rows} == set(by_key(controls.evaluate(all_scores())))
    assert all(r["n"] == 1 and len(r["values"]) == 1 and r["in_time"] in (True, False, None) for r in rows)
    assert all(r["in_time"] is not None for r in rows if r["control"] == "a")  # one job at a time: judged
    assert sorted(p.name for p in (tmp_path / "runs" / "controls-quick").iterdir() if p.name != "logs") == sorted(
        f"{label}-seed3" for label in controls.variants())
