import math

import pytest

from workbench.config import RunConfig, apply_overrides, parse_override
from workbench.errors import ConfigError
from workbench.presets import PRESETS, make_config


def test_yaml_round_trip_is_exact():
    config = make_config("supervised", ["model.depth=3", "objectives.supervised.layers=[1, 3]",
                                        "objectives.supervised.params.label_smoothing=0.1"])
    text = config.to_yaml()
    again = RunConfig.from_yaml(text)
    assert again == config
    assert again.to_yaml() == text


def test_yaml_round_trip_through_a_file(tmp_path):
    config = make_config("supervised", ["data.batch_size=64"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert RunConfig.from_yaml(path) == config


def test_overrides_are_typed_from_yaml():
    config = apply_overrides(RunConfig(), ["model.depth=8", "optim.lr=3e-4", "model.gradient_isolation=true",
                                           "data.image_size=null", "optim.betas=[0.9, 0.95]"])
    assert config.model.depth == 8 and isinstance(config.model.depth, int)
    assert math.isclose(config.optim.lr, 3e-4)
    assert config.model.gradient_isolation is True
    assert config.data.image_size is None
    assert config.optim.betas == [0.9, 0.95]


def test_ints_are_accepted_where_floats_are_expected_but_not_the_reverse():
    assert apply_overrides(RunConfig(), ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match="model.depth"):
        apply_overrides(RunConfig(), ["model.depth=2.5"])


def test_dict_overrides_and_nested_params():
    config = apply_overrides(RunConfig(), {"objectives.supervised.params.pool": "mean", "seed": 3})
    assert config.objectives["supervised"].params == {"pool": "mean"}
    assert config.seed == 3


def test_overrides_add_and_remove_objectives():
    config = apply_overrides(RunConfig(), ["objectives.deep.kind=supervised", "objectives.deep.layers=all"])
    assert set(config.objectives) == {"supervised", "deep"}
    assert config.objectives["deep"].weight == 1.0
    config = apply_overrides(config, ["objectives.supervised=null"])
    assert set(config.objectives) == {"deep"}


@pytest.mark.parametrize("override, field", [
    ("model.dept=8", "model.dept"),
    ("modell.depth=8", "modell"),
    ("model.depth", "override"),
    ("=3", "override"),
    ("model..depth=3", "override"),
    ("model.depth.x=3", "model.depth"),
    ("trainer.enable_progress_bar=yes please", "trainer.enable_progress_bar"),
])
def test_bad_overrides_name_the_field(override, field):
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), [override])
    assert info.value.field == field


def test_unknown_yaml_key_lists_the_allowed_keys():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"model": {"depht": 3}})
    assert info.value.field == "model.depht"
    assert "depth" in str(info.value)


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=x=y") == ("a", "x=y")


@pytest.mark.parametrize("override, field, words", [
    (["model.patch_size=5"], "model.patch_size", ["divisor of the image size 32"]),
    (["model.width=30"], "model.width", ["multiple of model.heads=4"]),
    (["objectives.supervised.layers=[9]"], "objectives.supervised.layers", ["0..6"]),
    (["objectives.supervised.weight=-1"], "objectives.supervised.weight", [">= 0"]),
    (["objectives.supervised.enabled=false"], "objectives", ["at least one enabled objective"]),
    (["objectives.nope.weight=1"], "objectives.nope", ["registered objective", "supervised"]),
    (["objectives.supervised.params.smoothing=0.1"], "objectives.supervised.params.smoothing", ["label_smoothing"]),
    (["data.name=imagenet"], "data.name", ["shapes", "fashion_mnist"]),
    (["data.label=size"], "data.label", ["shape", "count"]),
    (["data.val_fraction=1.5"], "data.val_fraction", ["(0, 1)"]),
    (["trainer.precision=fp8"], "trainer.precision", ["bf16-mixed"]),
    (["optim.lr=0"], "optim.lr", ["> 0"]),
    (["name=a/b"], "name", ["no slashes"]),
    (["data.name=image_folder"], "data.image_size", ["image_folder"]),
])
def test_validation_names_field_value_and_allowed(override, field, words):
    with pytest.raises(ConfigError) as info:
        make_config("supervised", override)
    assert info.value.field == field
    for w in words:
        assert w in str(info.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        make_config("nonsense")


def test_existing_run_name_is_refused_where_the_run_directory_is_created(tmp_path):
    from workbench.runs import create_run_dir

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "metrics.csv").write_text("another run's file")
    config = make_config("supervised", [f"runs_dir={tmp_path}", "name=taken"])  # a valid config
    with pytest.raises(ConfigError, match="taken.*exists"):
        create_run_dir(config)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["metrics.csv"]  # nothing written into it
    assert (tmp_path / "taken" / "metrics.csv").read_text() == "another run's file"


def test_every_preset_validates_and_is_documented():
    for name, preset in PRESETS.items():
        assert preset.summary.endswith(".") and len(preset.summary) < 120
        assert make_config(name).preset == name


def test_flat_fields_and_changed_fields_by_hand():
    from workbench.config import PLACEMENT_FIELDS, changed_fields, flat_fields

    assert flat_fields({"model": {"depth": 4, "heads": 2}, "objectives": {}, "seed": 0}) == {
        "model.depth": 4, "model.heads": 2, "objectives": {}, "seed": 0}
    a = make_config("supervised", ["model.depth=2"])
    b = make_config("supervised", ["model.depth=3", "name=other", "trainer.enable_progress_bar=true",
                                   "objectives.mae.kind=mae"])
    assert changed_fields(a, a) == []
    assert changed_fields(a, b, ignore=PLACEMENT_FIELDS) == sorted(
        ["model.depth", *(k for k in flat_fields(b.to_dict()) if k.startswith("objectives.mae."))])
    assert "name" in changed_fields(a, b) and "trainer.enable_progress_bar" in changed_fields(a, b)
