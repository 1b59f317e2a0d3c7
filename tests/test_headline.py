import json
import math

import pytest

from workbench.analysis import headline


def test_record_merges_and_round_trips(tmp_path):
    path = headline.record("01_demo", {"rankme/toy": 1.25, "acc": 0.5}, runs_dir=tmp_path, show=False)
    assert path == tmp_path / "01_demo" / "headline.json"
    headline.record("01_demo", {"acc": 0.75, "n": 3}, runs_dir=tmp_path, show=False)
    assert json.loads(path.read_text()) == {"rankme/toy": 1.25, "acc": 0.75, "n": 3.0}
    assert headline.load("01_demo", tmp_path) == {"rankme/toy": 1.25, "acc": 0.75, "n": 3.0}


def test_replace_drops_the_numbers_of_an_earlier_execution(tmp_path):
    headline.record("nb", {"old": 1.0, "acc": 0.5}, runs_dir=tmp_path, show=False)
    headline.record("nb", {"acc": 0.75}, runs_dir=tmp_path, show=False, replace=True)
    headline.record("nb", {"exercise": 2}, runs_dir=tmp_path, show=False)  # later cells still merge
    assert headline.load("nb", tmp_path) == {"acc": 0.75, "exercise": 2.0}


def test_non_finite_is_kept_and_non_number_rejected(tmp_path):
    headline.record("nb", {"x": float("nan")}, runs_dir=tmp_path, show=False)
    assert math.isnan(headline.load("nb", tmp_path)["x"])
    with pytest.raises(TypeError, match="'y'"):
        headline.record("nb", {"y": "high"}, runs_dir=tmp_path, show=False)
    assert set(headline.load("nb", tmp_path)) == {"x"}


def test_missing_is_empty(tmp_path):
    assert headline.load("never", tmp_path) == {}


def test_a_mapping_value_is_stored_entry_by_entry(tmp_path):
    headline.record("nb", {"acc": {"mean": 0.9, "low": 0.8, "high": 1.0, "n": 3, "excludes_zero": True},
                           "one": {"low": -math.inf}}, runs_dir=tmp_path, show=False)
    assert headline.load("nb", tmp_path) == {"acc/mean": 0.9, "acc/low": 0.8, "acc/high": 1.0, "acc/n": 3.0,
                                             "acc/excludes_zero": 1.0, "one/low": -math.inf}
    with pytest.raises(TypeError, match="'acc/interval'"):
        headline.record("nb", {"acc": {"interval": [0.8, 1.0]}}, runs_dir=tmp_path, show=False)
