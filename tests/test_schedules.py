import math
import warnings

import pytest
import yaml

from workbench.errors import ConfigError
from workbench.schedules import (
    Adaptive,
    Constant,
    Cosine,
    Linear,
    Schedule,
    Step,
    Warmup,
    WarmupCosine,
    build_schedule,
    is_schedule_spec,
    schedule_fields,
    warmup_cosine,
)


def test_warmup_is_linear_and_reaches_start_at_the_end_of_warmup():
    assert warmup_cosine(0, total=100, warmup=10) == pytest.approx(0.1)
    assert warmup_cosine(4, total=100, warmup=10) == pytest.approx(0.5)
    assert warmup_cosine(10, total=100, warmup=10) == pytest.approx(1.0)


def test_cosine_hits_its_midpoint_and_end():
    # halfway through the cosine part: cos(pi / 2) = 0, so the value is the mean of start and end
    assert warmup_cosine(55, total=100, warmup=10, start=1.0, end=0.2) == pytest.approx(0.6)
    assert warmup_cosine(100, total=100, warmup=10, start=1.0, end=0.2) == pytest.approx(0.2)
    assert warmup_cosine(500, total=100, warmup=10, end=0.2) == pytest.approx(0.2)
    # a quarter of the way: 0.5 * (1 + cos(pi/4))
    assert warmup_cosine(25, total=100, warmup=0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


# ------------------------------------------------------------------ curricula: time-based schedules

F = "objectives.mae.params.mask_ratio"


def test_a_plain_number_is_a_constant():
    for number in (0.75, 3):
        s = build_schedule(number, F)
        assert isinstance(s, Constant)
        assert [s.value(k, 100) for k in (0, 50, 100, 1000)] == [float(number)] * 4
        assert isinstance(s.value(0, 100), float)
    assert build_schedule({"schedule": "constant", "value": 0.5}, F).value(7, 10) == 0.5


def test_linear_start_midpoint_end_and_beyond():
    s = build_schedule({"schedule": "linear", "start": 0.4, "end": 0.8}, F)
    assert isinstance(s, Linear)
    assert s.value(0, 200) == 0.4
    assert s.value(100, 200) == pytest.approx(0.6)
    assert s.value(50, 200) == pytest.approx(0.5)
    assert s.value(200, 200) == 0.8
    assert s.value(900, 200) == 0.8


def test_linear_warmup_holds_start_then_ramps():
    # weight off for the first 10% of training, then a straight line to 1 at the end
    s = build_schedule({"schedule": "linear", "start": 0.0, "end": 1.0, "warmup": 0.1}, "objectives.mae.weight")
    assert s.value(0, 100) == 0.0
    assert s.value(10, 100) == 0.0
    assert s.value(55, 100) == pytest.approx(0.5)
    assert s.value(100, 100) == 1.0
    # until: the change ends before the end of training
    s = build_schedule({"schedule": "linear", "start": 1.0, "end": 0.0, "warmup": 0.2, "until": 0.6}, F)
    assert s.value(40, 100) == pytest.approx(0.5)
    assert s.value(60, 100) == 0.0
    assert s.value(99, 100) == 0.0


def test_decreasing_linear():
    s = build_schedule({"schedule": "linear", "start": 0.996, "end": 0.9}, "objectives.dino.params.momentum")
    assert s.value(25, 100) == pytest.approx(0.996 - 0.25 * 0.096)


def test_cosine_start_midpoint_quarter_end():
    s = build_schedule({"schedule": "cosine", "start": 0.4, "end": 0.75}, F)
    assert isinstance(s, Cosine)
    assert s.value(0, 100) == 0.4
    assert s.value(50, 100) == pytest.approx((0.4 + 0.75) / 2)
    assert s.value(25, 100) == pytest.approx(0.75 + (0.4 - 0.75) * (1 + math.cos(math.pi / 4)) / 2)
    assert s.value(100, 100) == 0.75
    assert s.value(150, 100) == 0.75
    # with a hold: cosine over [0.2, 1]
    s = build_schedule({"schedule": "cosine", "start": 1.0, "end": 0.0, "warmup": 0.2}, F)
    assert s.value(20, 100) == 1.0
    assert s.value(60, 100) == pytest.approx(0.5)


def test_warmup_ramps_then_stays_constant():
    spec = {"schedule": "warmup", "start": 0.04, "end": 0.07, "warmup": 0.3}
    s = build_schedule(spec, "objectives.dino.params.teacher_temp")
    assert isinstance(s, Warmup)
    assert s.value(0, 1000) == 0.04
    assert s.value(150, 1000) == pytest.approx(0.055)
    assert s.value(300, 1000) == 0.07
    assert s.value(999, 1000) == 0.07
    # the same spec adapts to the run length
    assert s.value(15, 100) == pytest.approx(0.055)


def test_warmup_cosine_matches_the_lr_function():
    s = build_schedule({"schedule": "warmup_cosine", "start": 1.0, "end": 0.2, "warmup": 0.1}, F)
    assert isinstance(s, WarmupCosine)
    for k in (0, 4, 9, 10, 55, 99, 100, 300):
        assert s.value(k, 100) == pytest.approx(warmup_cosine(k, 100, warmup=10, start=1.0, end=0.2))
    assert s.value(55, 100) == pytest.approx(0.6)
    steps = build_schedule({"schedule": "warmup_cosine", "start": 1.0, "end": 0.2, "warmup": 10, "unit": "steps"}, F)
    assert [steps.value(k, 100) for k in (0, 55, 100)] == [s.value(k, 100) for k in (0, 55, 100)]


def test_step_values_at_and_around_boundaries():
    s = build_schedule({"schedule": "step", "values": [1.0, 0.5, 0.25], "boundaries": [0.5, 0.8]}, F)
    assert isinstance(s, Step)
    expected = {0: 1.0, 49: 1.0, 50: 0.5, 51: 0.5, 79: 0.5, 80: 0.25, 81: 0.25, 100: 0.25}
    assert {k: s.value(k, 100) for k in expected} == expected
    # a boundary that is not exact in binary floating point (0.7 * 10 = 7.000000000000001)
    s = build_schedule({"schedule": "step", "values": [0, 1], "boundaries": [0.7]}, F)
    assert [s.value(k, 10) for k in (6, 7, 8)] == [0.0, 1.0, 1.0]
    # a single value needs no boundary
    assert build_schedule({"schedule": "step", "values": [3], "boundaries": []}, F).value(5, 10) == 3.0


def test_unit_steps():
    s = build_schedule({"schedule": "step", "values": [1.0, 0.1], "boundaries": [300], "unit": "steps"}, F)
    assert [s.value(k, 10_000) for k in (299, 300)] == [1.0, 0.1]
    assert [s.value(k, 400) for k in (299, 300)] == [1.0, 0.1]  # independent of the run length
    w = build_schedule({"schedule": "warmup", "start": 0.0, "end": 1.0, "warmup": 200, "unit": "steps"}, F)
    assert [w.value(k, 10_000) for k in (0, 100, 200, 5000)] == [0.0, 0.5, 1.0, 1.0]
    lin = build_schedule({"schedule": "linear", "start": 0.0, "end": 1.0, "warmup": 100, "unit": "steps"}, F)
    assert lin.value(100, 300) == 0.0
    assert lin.value(200, 300) == pytest.approx(0.5)  # ends at total_steps by default
    lin = build_schedule({"schedule": "linear", "start": 0.0, "end": 1.0, "until": 100, "unit": "steps"}, F)
    assert [lin.value(k, 1000) for k in (50, 100, 500)] == [0.5, 1.0, 1.0]


SPECS = [
    {"schedule": "constant", "value": 0.3},
    {"schedule": "linear", "start": 0.0, "end": 1.0, "warmup": 0.1},
    {"schedule": "linear", "start": 2, "end": 1, "warmup": 10, "until": 90, "unit": "steps"},
    {"schedule": "cosine", "start": 0.4, "end": 0.75},
    {"schedule": "warmup", "start": 0.04, "end": 0.07, "warmup": 0.3},
    {"schedule": "warmup_cosine", "start": 1.0, "end": 0.01, "warmup": 0.05},
    {"schedule": "step", "values": [1.0, 0.5, 0.25], "boundaries": [0.5, 0.8]},
    {
        "schedule": "adaptive",
        "start": 0.3,
        "end": 0.9,
        "step": 0.05,
        "target": 0.5,
        "metric": "mae/loss",
        "every": 50,
        "patience": 1,
    },
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["schedule"])
def test_specs_round_trip_through_yaml(spec):
    text = yaml.safe_dump({"mask_ratio": spec})
    loaded = yaml.safe_load(text)["mask_ratio"]
    assert loaded == spec
    a, b = build_schedule(spec, F), build_schedule(loaded, F)
    grid = [0, 1, 7, 33, 50, 64, 80, 99, 100, 150]
    assert [a.value(k, 100) for k in grid] == [b.value(k, 100) for k in grid]
    # the spec a schedule reports (defaults filled in) builds an equal schedule, through YAML too
    c = build_schedule(yaml.safe_load(yaml.safe_dump(a.to_spec())), F)
    assert c == a
    assert [c.value(k, 100) for k in grid] == [a.value(k, 100) for k in grid]
    assert type(a).__name__ in repr(a)


def test_is_schedule_spec_and_schedule_fields():
    assert is_schedule_spec({"schedule": "linear", "start": 0, "end": 1})
    assert not is_schedule_spec(0.5)
    assert not is_schedule_spec({"start": 0})
    assert not is_schedule_spec([("schedule", "linear")])
    params = {
        "mask_ratio": {"schedule": "cosine", "start": 0.4, "end": 0.75},
        "teacher_temp": {"schedule": "warmup", "start": 0.04, "end": 0.07, "warmup": 0.3},
        "patch": 4,
        "norm_pix": True,
        "name": "x",
        "nested": {"a": 1},
    }
    fields = schedule_fields(params, "objectives.mae.params")
    assert set(fields) == {"mask_ratio", "teacher_temp"}
    assert fields["mask_ratio"].value(50, 100) == pytest.approx(0.575)
    assert schedule_fields({"mask_ratio": 0.75}, "objectives.mae.params") == {}
    with pytest.raises(ConfigError) as err:
        schedule_fields({"mask_ratio": {"schedule": "cosin"}}, "objectives.mae.params")
    assert err.value.field.startswith("objectives.mae.params.mask_ratio")


def test_a_schedule_instance_passes_through_and_stateless_ones_ignore_metrics_and_state():
    s = Linear(0.0, 1.0)
    assert build_schedule(s, F) is s
    s.observe(10, {"mae/loss": 0.1})
    assert s.state_dict() == {}
    s.load_state_dict({})
    assert s(50, 100) == pytest.approx(0.5)
    assert not s.stateful and isinstance(s, Schedule)


def test_total_steps_must_be_positive_for_fractions():
    with pytest.raises(ValueError):
        build_schedule({"schedule": "linear", "start": 0, "end": 1}, F).value(0, 0)


# ------------------------------------------------------------------------------------- adaptive


def adaptive(**overrides):
    spec = {"schedule": "adaptive", "start": 0.3, "end": 0.45, "step": 0.05, "target": 0.5, "metric": "mae/loss"}
    spec["every"] = 50
    spec.update(overrides)
    return build_schedule(spec, F)


def run(schedule, losses, log_every=10, total=10_000, extra=None):
    """Observe ``losses[i]`` at step ``(i + 1) * log_every``; return the value after each observation."""
    out = []
    for i, loss in enumerate(losses):
        step = (i + 1) * log_every
        schedule.observe(step, {"mae/loss": loss, "other": 9.0, **(extra or {})})
        out.append(schedule.value(step, total))
    return out


def test_adaptive_rises_every_check_while_below_target_and_stops_at_end():
    s = adaptive()
    assert isinstance(s, Adaptive)
    assert s.value(0, 100) == 0.3
    values = run(s, [0.1] * 30)  # steps 10..300; checks at 50, 100, 150, ...
    assert values[3] == 0.3  # step 40: no check yet
    assert values[4] == pytest.approx(0.35)  # step 50
    assert values[8] == pytest.approx(0.35)  # step 90
    assert values[9] == pytest.approx(0.40)  # step 100
    assert values[14] == 0.45  # step 150: end reached (exactly)
    assert values[-1] == 0.45  # never passes it


def test_adaptive_patience_needs_consecutive_passing_checks():
    s = adaptive(patience=2, end=0.9)
    # checks at 50 (pass), 100 (pass -> move), 150 (fail: resets), 200 (pass), 250 (pass -> move)
    losses = {50: 0.1, 100: 0.1, 150: 0.9, 200: 0.1, 250: 0.1}
    values = {step: (s.observe(step, {"mae/loss": loss}), s.value(step, 1000))[1] for step, loss in losses.items()}
    assert values == pytest.approx({50: 0.3, 100: 0.35, 150: 0.35, 200: 0.35, 250: 0.4})


def test_adaptive_does_not_move_while_above_target():
    s = adaptive()
    assert run(s, [0.6] * 30) == [0.3] * 30
    assert s.state_dict()["counter"] == 0
    assert s.state_dict()["last_check"] == 300
    assert run(adaptive(), [float("nan")] * 10) == [0.3] * 10  # a non-finite metric never passes


def test_adaptive_eases_back_when_enabled_and_only_beyond_tolerance():
    s = adaptive(end=0.9, ease=True, tolerance=0.2)
    for step in (50, 100, 150):
        s.observe(step, {"mae/loss": 0.1})
    assert s.value(150, 1000) == pytest.approx(0.45)
    s.observe(200, {"mae/loss": 0.55})  # above target, within tolerance (0.6): holds
    assert s.value(200, 1000) == pytest.approx(0.45)
    s.observe(250, {"mae/loss": 0.7})  # too hard: one step back
    assert s.value(250, 1000) == pytest.approx(0.40)
    for step in range(300, 1000, 50):
        s.observe(step, {"mae/loss": 5.0})
    assert s.value(1000, 1000) == 0.3  # never below start
    # off by default
    t = adaptive(end=0.9)
    t.observe(50, {"mae/loss": 0.1})
    t.observe(100, {"mae/loss": 5.0})
    assert t.value(100, 1000) == pytest.approx(0.35)


def test_adaptive_decreasing_and_max_mode():
    # start > end: a noise level that goes down while the loss is low
    s = adaptive(start=1.0, end=0.1, step=0.4)
    assert run(s, [0.1] * 20)[4::5] == pytest.approx([0.6, 0.2, 0.1, 0.1])
    # mode max: accuracy must stay above target
    spec = {"schedule": "adaptive", "start": 0.0, "end": 1.0, "step": 0.5, "target": 0.8, "metric": "acc"}
    s = build_schedule({**spec, "every": 1, "mode": "max"}, F)
    s.observe(1, {"acc": 0.7})
    assert s.value(1, 10) == 0.0
    s.observe(2, {"acc": 0.9})
    assert s.value(2, 10) == 0.5


def test_adaptive_checks_once_per_interval_and_warns_once_about_a_missing_metric():
    s = adaptive(end=0.9)
    s.observe(50, {"mae/loss": 0.1})
    s.observe(50, {"mae/loss": 0.1})  # same step again (e.g. re-observed after a resume): no second check
    s.observe(99, {"mae/loss": 0.1})
    assert s.value(99, 1000) == pytest.approx(0.35)
    with pytest.warns(UserWarning, match="mae/loss"):
        s.observe(100, {"other": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.observe(110, {"other": 0.1})  # warned once only
    s.observe(120, {"mae/loss": 0.1})  # the check that was due happens as soon as the metric arrives
    assert s.value(120, 1000) == pytest.approx(0.40)


def test_adaptive_state_dict_resumes_exactly():
    losses = [0.1, 0.2, 0.7, 0.1, 0.4, 0.1, 0.9, 0.45, 0.1, 0.1] * 6
    spec = dict(end=0.9, patience=2, ease=True, every=30)
    full = run(adaptive(**spec), losses, log_every=10)

    first = adaptive(**spec)
    head = run(first, losses[:25], log_every=10)
    state = yaml.safe_load(yaml.safe_dump(first.state_dict()))  # plain data, like a checkpoint
    assert set(state) >= {"value", "counter", "last_check"}
    resumed = adaptive(**spec)
    resumed.load_state_dict(state)
    assert resumed == first
    tail = []
    for i, loss in enumerate(losses[25:], start=25):
        step = (i + 1) * 10
        resumed.observe(step, {"mae/loss": loss})
        tail.append(resumed.value(step, 10_000))
    assert head + tail == full
    assert len(set(full)) > 2  # the scripted run does move up and down
    # a state holding only the value is enough to recover the level
    only_value = adaptive(**spec)
    only_value.load_state_dict({k: state[k] for k in ("value", "counter", "last_check")})
    assert only_value.state_dict() == first.state_dict()


# ------------------------------------------------------------------------------------ bad specs

A = {"schedule": "adaptive", "start": 0.3, "end": 0.9, "step": 0.05, "target": 0.5, "metric": "mae/loss"}

BAD = [
    ("unknown name", {"schedule": "cosin", "start": 0, "end": 1}, "cosine"),
    ("name not a string", {"schedule": 3}, "one of"),
    ("no schedule key", {"start": 0, "end": 1}, "schedule"),
    ("not a number or dict", "0.5", "number"),
    ("a bool", True, "number"),
    ("a list", [0.1, 0.2], "number"),
    ("a non-finite number", float("nan"), "finite"),
    ("missing end", {"schedule": "linear", "start": 0}, "missing end"),
    ("missing warmup", {"schedule": "warmup", "start": 0, "end": 1}, "missing warmup"),
    ("unknown key", {"schedule": "linear", "start": 0, "end": 1, "warmpu": 0.1}, "unknown key"),
    ("start not a number", {"schedule": "linear", "start": "zero", "end": 1}, "number"),
    ("end from 1e-3 in YAML", {"schedule": "cosine", "start": 0, "end": yaml.safe_load("1e-3")}, "1.0e-3"),
    ("start a bool", {"schedule": "cosine", "start": True, "end": 1}, "number"),
    ("warmup above 1", {"schedule": "warmup", "start": 0, "end": 1, "warmup": 1.5}, "[0, 1]"),
    ("negative warmup", {"schedule": "linear", "start": 0, "end": 1, "warmup": -0.1}, "[0, 1]"),
    ("warmup after until", {"schedule": "linear", "start": 0, "end": 1, "warmup": 0.6, "until": 0.5}, "before until"),
    ("bad unit", {"schedule": "linear", "start": 0, "end": 1, "unit": "epochs"}, "steps"),
    ("fractional steps", {"schedule": "warmup", "start": 0, "end": 1, "warmup": 10.5, "unit": "steps"}, "whole number"),
    ("boundaries not increasing", {"schedule": "step", "values": [1, 2, 3], "boundaries": [0.8, 0.5]}, "increasing"),
    ("repeated boundary", {"schedule": "step", "values": [1, 2, 3], "boundaries": [0.5, 0.5]}, "increasing"),
    ("boundary outside [0, 1]", {"schedule": "step", "values": [1, 2], "boundaries": [1.2]}, "[0, 1]"),
    ("length mismatch", {"schedule": "step", "values": [1, 2], "boundaries": [0.2, 0.5]}, "one more value"),
    ("empty values", {"schedule": "step", "values": [], "boundaries": []}, "non-empty"),
    ("values not a list", {"schedule": "step", "values": 1.0, "boundaries": []}, "list"),
    ("value not a number", {"schedule": "step", "values": [1, "x"], "boundaries": [0.5]}, "number"),
    ("constant without value", {"schedule": "constant"}, "missing value"),
    ("adaptive step 0", {**A, "step": 0}, "> 0"),
    ("adaptive negative step", {**A, "step": -0.05}, "> 0"),
    ("adaptive every 0", {**A, "every": 0}, ">= 1"),
    ("adaptive every not int", {**A, "every": 2.5}, "integer"),
    ("adaptive patience 0", {**A, "patience": 0}, ">= 1"),
    ("adaptive no metric", {k: v for k, v in A.items() if k != "metric"}, "missing metric"),
    ("adaptive empty metric", {**A, "metric": ""}, "logged metric"),
    ("adaptive ease not bool", {**A, "ease": "yes"}, "true or false"),
    ("adaptive negative tolerance", {**A, "tolerance": -1}, ">= 0"),
    ("adaptive bad mode", {**A, "mode": "lower"}, "'min'"),
    ("adaptive with unit", {**A, "unit": "steps"}, "unknown key"),
]


@pytest.mark.parametrize("case, spec, allowed", BAD, ids=[case for case, _, _ in BAD])
def test_invalid_specs_raise_config_error_naming_the_field(case, spec, allowed):
    with pytest.raises(ConfigError) as err:
        build_schedule(spec, F)
    exc = err.value
    assert exc.field == F or exc.field.startswith(F + ".")
    assert F in str(exc)
    assert allowed in exc.allowed
    assert isinstance(exc, ValueError)


def test_unknown_schedule_error_lists_every_known_name():
    with pytest.raises(ConfigError) as err:
        build_schedule({"schedule": "exponential"}, F)
    assert err.value.field == F + ".schedule"
    assert err.value.value == "exponential"
    for name in ("constant", "linear", "cosine", "step", "warmup", "warmup_cosine", "adaptive"):
        assert name in err.value.allowed
