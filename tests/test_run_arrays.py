"""The names of a run's saved arrays, and reading some of them without the rest."""

import json

import numpy as np
import pytest

from workbench.runs import Run, embedding_key, parse_embedding_key, saved_layers, saved_pools

NAMES = ["l0_cls", "l0_mean", "l2_mean", "spectrum_l0_mean", "spectrum_l2_mean", "labels", "factors", "ids",
         "l12_cls"]


def test_embedding_key_and_its_parse_round_trip():
    assert embedding_key(3, "cls") == "l3_cls" and embedding_key(12, "mean", spectrum=True) == "spectrum_l12_mean"
    assert parse_embedding_key("l3_cls") == (False, 3, "cls")
    assert parse_embedding_key("spectrum_l12_mean") == (True, 12, "mean")
    for other in ("labels", "factors", "ids", "lx_cls", "l3_", "spectrum_ids"):
        assert parse_embedding_key(other) is None, other


def test_saved_layers_and_pools_by_kind():
    assert saved_layers(NAMES, "mean") == [0, 2] and saved_layers(NAMES, "cls") == [0, 12]
    assert saved_layers(NAMES, "mean", spectrum=True) == [0, 2] and saved_layers(NAMES, "cls", spectrum=True) == []
    assert saved_pools(NAMES) == ["cls", "mean"] and saved_pools(NAMES, spectrum=True) == ["mean"]


def test_embeddings_reads_the_asked_arrays_only(tmp_path):
    (tmp_path / "embeddings").mkdir()
    np.savez(tmp_path / "embeddings" / "epoch=004.npz", l1_cls=np.ones((3, 2)), l1_mean=np.zeros((3, 2)),
             ids=np.arange(3))
    run = Run(tmp_path)
    assert run.embedding_keys(4) == ["l1_cls", "l1_mean", "ids"]
    some = run.embeddings(4, ["ids", "l1_cls", "l9_cls", "ids"])  # unknown names are left out, repeats read once
    assert list(some) == ["ids", "l1_cls"]
    np.testing.assert_array_equal(some["l1_cls"], np.ones((3, 2)))
    assert list(run.embeddings(4)) == ["l1_cls", "l1_mean", "ids"]
    assert list(run.embeddings(4, "l1_mean")) == ["l1_mean"]  # one name as a string


def test_probe_info_reads_the_names_without_the_images(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(FileNotFoundError, match="probe.json"):
        run.probe_info()
    (tmp_path / "embeddings").mkdir()
    spec = {"name": "colour", "kind": "categorical", "level": "low", "description": "hue", "values": ["r", "g"],
            "range": None}
    (tmp_path / "embeddings" / "probe.json").write_text(json.dumps({"classes": ["a", "b"], "factors": [spec]}))
    info = run.probe_info()
    assert info["classes"] == ["a", "b"]
    (factor,) = info["factor_specs"]
    assert (factor.name, factor.kind, factor.level, factor.values, factor.range) == ("colour", "categorical", "low",
                                                                                     ("r", "g"), None)
