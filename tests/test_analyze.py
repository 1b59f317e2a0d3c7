"""wb.analyze: any ViT's per-layer diagnostics written as a run directory that everything reads.

A tiny timm ViT (random initialisation: this machine cannot download weights), a workbench run's
checkpoint, the workbench's own ViT and an adapted module are analysed on a small ``shapes`` probe
set; the numbers are checked against hand computations from the models themselves, and against
what the training callback recorded for the same weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.analysis import layouts, readouts
from workbench.errors import ConfigError, DataError
from workbench.models.adapters import LayerwiseModel, Preprocess, timm_tokens

# a 2-block timm ViT of width 32 on 32 x 32 images, 8 x 8 patches: seconds per pass on two cores
TIMM = "vit_tiny_patch16_224"
TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
# 600 images: a probe set of 54 (10% of the 540 left after the test split); one coherence pair
FAST = ["data.shapes.num_images=600", "data.probe_size=120", "diagnostics.probe_steps=10",
        "diagnostics.token_images=16", "diagnostics.coherence=[shape:color]"]
# only the embeddings are compared: the cheapest pass
LIGHT = FAST + ["diagnostics.probe_steps=1", "diagnostics.token_images=0", "diagnostics.coherence=[]"]
# the notebook fixtures' tiny training run, with the same diagnostics as FAST
RUN = ["data.shapes.num_images=600", "data.batch_size=64", "data.probe_size=120", "model.patch_size=8",
       "model.width=16", "model.depth=2", "model.heads=2", "trainer.max_epochs=1", "trainer.log_every_n_steps=3",
       "diagnostics.token_images=16", "diagnostics.probe_steps=10", "diagnostics.coherence=[shape:color]"]


def tiny_timm(seed: int = 0) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(TIMM, pretrained=False, **TINY).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("analyze-data")


@pytest.fixture(scope="module")
def timm_model():
    return tiny_timm()


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory, cache, timm_model):
    root = tmp_path_factory.mktemp("analyze-timm")
    return wb.analyze(timm_model, overrides=FAST, out=root / "tiny-vit", cache_dir=cache)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("analyze-fit")
    return wb.fit(preset="supervised", overrides=RUN + [f"runs_dir={root}", "name=tiny"], cache_dir=cache)


def normalised(images: torch.Tensor, mean, std) -> torch.Tensor:
    """By hand: uint8 -> [0, 1] -> per-channel standardised."""
    x = images.float() / 255.0
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


# ---- the tokens ------------------------------------------------------------------------------


def test_timm_last_intermediate_with_norm_is_forward_features_and_the_layers_are_the_blocks(timm_model):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        features = timm_model.forward_features(x)
        final, normed = timm_model.forward_intermediates(x, norm=True, output_fmt="NLC", return_prefix_tokens=True)
        patches, prefix = normed[-1]
        # timm: with norm=True every intermediate goes through the final norm, so the last one is forward_features
        torch.testing.assert_close(torch.cat([prefix, patches], dim=1), features)
        torch.testing.assert_close(final, features)
        layers, last = timm_tokens(timm_model)(x)
        # the same blocks by hand: layer 0 enters block 1; block outputs without the norm; the last one normed
        h = timm_model.norm_pre(timm_model._pos_embed(timm_model.patch_embed(x)))
        assert len(layers) == len(timm_model.blocks) + 1
        torch.testing.assert_close(layers[0], h)
        for i, block in enumerate(timm_model.blocks):
            h = block(h)
            torch.testing.assert_close(layers[i + 1], h)
        torch.testing.assert_close(last, features)
        torch.testing.assert_close(last, timm_model.norm(layers[-1]))
        assert not torch.allclose(layers[-1], features)  # the raw last block is not what the model reads out


def test_preprocessing_normalises_repeats_grey_and_resizes_as_stated():
    pre = Preprocess(image_size=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), interpolation="nearest", channels=3)
    model = LayerwiseModel(lambda x: ([x.flatten(2).transpose(1, 2)] * 2, x.flatten(2).transpose(1, 2)), 0, pre)
    grey = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)  # 1 x 1 x 2 x 2
    x = model.prepare(grey)
    assert x.shape == (1, 3, 4, 4)
    # nearest 2x: each pixel becomes a 2 x 2 block; channel c is (v / 255 - mean_c) / std_c
    v = torch.tensor([[0.0, 1.0], [0.2, 0.4]]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    for c, (m, s) in enumerate(zip(pre.mean, pre.std)):
        torch.testing.assert_close(x[0, c], (v - m) / s)
    with pytest.raises(ConfigError, match="channels"):
        model.prepare(torch.zeros(1, 2, 4, 4, dtype=torch.uint8))


# ---- a timm ViT, end to end ------------------------------------------------------------------


def test_a_timm_vit_is_analysed_into_a_run_directory_every_reader_opens(timm_run):
    run = wb.load_run(timm_run.path)
    for name in ("config.yaml", "analysis.yaml", "summary.json", "diagnostics.csv", "embeddings/epoch=000.npz",
                 "embeddings/probe.npz", "embeddings/probe.json"):
        assert (run.path / name).is_file(), name
    assert not list(run.path.parent.glob(".*partial*"))
    config = run.config
    assert config.preset == "analyze:vit_tiny_patch16_224" and config.objectives == {}
    assert (config.model.depth, config.model.width, config.model.patch_size, config.model.heads) == (2, 32, 8, 2)
    assert config.data.shapes.image_size == 32
    about = run.analysis
    assert about["model"]["source"] == "timm" and about["model"]["weights"] == "as given"
    assert about["model"]["final_norm"] == "applied to the last layer only"
    assert about["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and about["preprocessing"]["resized"] is False
    assert run.summary["status"] == "completed" and set(run.summary["headline"]) == {
        "last_layer/linear_acc", "last_layer/knn_acc", "last_layer/rankme"}
    table = run.diagnostics
    assert set(table["epoch"]) == {0} and set(table["layer"]) == {0, 1, 2}
    metrics = set(table["metric"])
    for required in ("rankme", "linear_acc", "knn_acc", "factor/color", "factor/count", "invariance", "lidar",
                     "coherence/shape|color/cosine", "token_cosine", "cka/0"):
        assert required in metrics, required
    assert readouts.factor_table(run).shape == (3, 10)
    assert readouts.by_layer(run, "invariance", pool="cls").index.tolist() == [1, 2]
    # every figure of a run reads it; the loss panel says that nothing was trained here
    for figure in (wb.plots.decodability(run), wb.plots.collapse_heatmaps(run), wb.plots.spectra(run),
                   wb.plots.cka(run)):
        assert figure.data
    assert "trained elsewhere" in wb.plots.loss_curves(run).layout.annotations[0].text
    listed = wb.list_runs(run.path.parent)
    assert listed.loc[0, "preset"] == "analyze:vit_tiny_patch16_224" and listed.loc[0, "status"] == "completed"
    # fit refuses the config: an analysis has no objective to train
    with pytest.raises(ConfigError, match="objectives"):
        wb.fit(run.config.with_overrides({"name": ""}))


def test_the_saved_embeddings_are_the_models_own_tokens(timm_run, timm_model):
    probe = timm_run.probe()
    x = normalised(torch.from_numpy(probe["images"]), (0.5,) * 3, (0.5,) * 3)
    with torch.no_grad():
        features = timm_model.forward_features(x)  # the last layer, after the final norm
        block1 = timm_model.blocks[0](timm_model.norm_pre(timm_model._pos_embed(timm_model.patch_embed(x))))
    saved = timm_run.embeddings(0, ["l2_mean", "l2_cls", "l1_cls", "labels"])
    # saved as float16: relative error below 2^-10
    np.testing.assert_allclose(saved["l2_mean"], features[:, 1:].mean(1).numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(saved["l2_cls"], features[:, 0].numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(saved["l1_cls"], block1[:, 0].numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(saved["labels"], probe["labels"])


@pytest.mark.slow  # UMAP's compilation: tens of seconds on two busy cores
def test_layouts_of_an_analysis(timm_run):
    result = layouts.compute_layouts(timm_run, n_epochs=10, max_points=40, cache=False, progress=False)
    assert result.epochs == [0] and result.layers == [0, 1, 2]


@pytest.mark.slow  # a kernel, UMAP's compilation and every panel: tens of seconds
def test_notebook_05_opens_an_analysis_unchanged(timm_run, tmp_path):
    import json
    from pathlib import Path

    import papermill

    executed = tmp_path / "05.ipynb"
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    papermill.execute_notebook(str(notebooks / "05_layer_explorer.ipynb"), str(executed), cwd=str(notebooks),
                               parameters={"RUN_DIR": str(timm_run.path), "RUNS_DIR": str(tmp_path / "runs"),
                                           "INTERACTIVE": False, "UMAP_EPOCHS": 20, "LAYOUT_POINTS": 40},
                               kernel_name="python3", progress_bar=False)
    numbers = json.loads((tmp_path / "runs" / "05_layer_explorer" / "headline.json").read_text())
    assert numbers["last_layer_linear_acc"] == readouts.at_last_layer(timm_run, "linear_acc", "mean")


def test_a_state_dict_saved_with_torch_save_or_safetensors_gives_the_same_embeddings(tmp_path, cache, timm_run,
                                                                                      timm_model):
    from safetensors.torch import save_file

    from workbench.models.adapters import create_timm, load_weights

    torch.save(timm_model.state_dict(), tmp_path / "weights.pt")
    reference = timm_run.embeddings(0)
    run = wb.analyze(TIMM, model_kwargs=TINY, checkpoint=tmp_path / "weights.pt", overrides=LIGHT,
                     out=tmp_path / "loaded", cache_dir=cache)
    assert run.analysis["model"]["weights"] == str((tmp_path / "weights.pt").resolve())
    loaded = run.embeddings(0)
    assert set(loaded) == set(reference)
    for key in reference:
        np.testing.assert_array_equal(loaded[key], reference[key], err_msg=key)
    # a safetensors file loads the same weights; a new model's own random weights differ from them
    save_file(timm_model.state_dict(), str(tmp_path / "weights.safetensors"))
    fresh = create_timm(TIMM, model_kwargs=TINY)
    assert not torch.equal(fresh.pos_embed, timm_model.pos_embed)
    load_weights(fresh, tmp_path / "weights.safetensors")
    for key, value in timm_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


# ---- a workbench run ---------------------------------------------------------------------------


def test_a_workbench_checkpoint_is_analysed_as_its_training_callback_recorded_it(trained, tmp_path, cache):
    run = wb.analyze(run=trained.path, out=tmp_path / "again", cache_dir=cache)
    assert run.analysis["model"]["source"] == "workbench-run"
    assert run.config.data == trained.config.data and run.config.diagnostics == trained.config.diagnostics
    last = int(trained.diagnostics["epoch"].max())
    recorded = trained.diagnostics[trained.diagnostics["epoch"] == last].drop(columns="epoch")
    analysed = run.diagnostics.drop(columns="epoch")
    merged = recorded.merge(analysed, on=["layer", "pool", "metric"], suffixes=("_fit", "_analyze"), how="outer")
    assert len(merged) == len(recorded) == len(analysed)
    # the same weights, probe images, seeds and code path: equal up to float32 rounding
    np.testing.assert_allclose(merged["value_analyze"], merged["value_fit"], rtol=1e-5, atol=1e-6)
    for key, array in trained.embeddings(last).items():
        np.testing.assert_array_equal(run.embeddings(0, key)[key], array, err_msg=key)
    # the checkpoint file alone is the same analysis
    alone = wb.analyze(checkpoint=trained.checkpoint, out=tmp_path / "alone", cache_dir=cache,
                       overrides=LIGHT[-3:])
    assert alone.analysis["model"]["source"] == "workbench-checkpoint"
    np.testing.assert_array_equal(alone.embeddings(0, "l2_mean")["l2_mean"],
                                  trained.embeddings(last, "l2_mean")["l2_mean"])


def test_the_workbench_vit_and_an_adapted_module(trained, tmp_path, cache):
    from workbench.training.module import WorkbenchModule

    module = WorkbenchModule.load_from_checkpoint(trained.checkpoint, map_location="cpu", weights_only=True).eval()
    vit, info = module.backbone, module.data_info
    fast = LIGHT[-3:]
    # the bare backbone: normalised with the data's statistics, as in training
    bare = wb.analyze(vit, overrides=fast, out=tmp_path / "vit", cache_dir=cache, data=trained.config.data)
    reference = trained.embeddings(int(trained.diagnostics["epoch"].max()), "l2_mean")["l2_mean"]
    np.testing.assert_array_equal(bare.embeddings(0, "l2_mean")["l2_mean"], reference)

    # any module through an adapter: here a model without a CLS token (num_prefix=0: mean pool only)
    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 8, 8)
            self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))

    torch.manual_seed(0)
    mixer = Mixer().eval()

    def tokens(images):
        x = mixer.embed(images).flatten(2).transpose(1, 2)
        out = [x]
        for layer in mixer.layers:
            x = x + torch.tanh(layer(x))
            out.append(x)
        return out

    adapted = wb.analyze(mixer, adapter=tokens, num_prefix=0, overrides=FAST + ["data.shapes.image_size=32"],
                         out=tmp_path / "mixer", cache_dir=cache)
    assert adapted.config.diagnostics.pools == ["mean"] and set(adapted.diagnostics["pool"]) == {"mean", "tokens"}
    assert adapted.config.model.depth == 2 and adapted.config.model.patch_size == 8
    assert adapted.analysis["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's
    probe = adapted.probe()
    with torch.no_grad():
        layers = tokens(normalised(torch.from_numpy(probe["images"]), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    np.testing.assert_allclose(adapted.embeddings(0, "l1_mean")["l1_mean"], layers[1].mean(1).numpy(),
                               rtol=2e-3, atol=2e-3)


def test_the_cli_analyses_a_timm_model_with_local_weights_and_a_run(tmp_path, cache, trained, timm_run, timm_model,
                                                                      capsys):
    from workbench.cli import main

    torch.save(timm_model.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "cli"
    args = ["analyze", "--timm", TIMM, *[f"--model-arg={k}={v}" for k, v in TINY.items()], "--checkpoint",
            str(tmp_path / "weights.pt"), "--out", str(out), "--data-dir", str(cache), *[f"--set={o}" for o in LIGHT]]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert wb.load_run(out).config.model.width == 32
    # the weights saved with torch.save(state_dict) give the embeddings of the model they came from
    for key, array in timm_run.embeddings(0).items():
        np.testing.assert_array_equal(wb.load_run(out).embeddings(0, key)[key], array, err_msg=key)
    assert main(["analyze", "--run", str(trained.path), "--out", str(tmp_path / "cli-run"), "--data-dir", str(cache),
                 *[f"--set={o}" for o in LIGHT[-3:]]]) == 0
    assert wb.load_run(tmp_path / "cli-run").analysis["model"]["source"] == "workbench-run"
    assert main(["analyze", "--timm", "no_such_vit", "--out", str(tmp_path / "x")]) == 2
    assert "timm='no_such_vit'" in capsys.readouterr().err
    assert main(["analyze", "--out", str(tmp_path / "x")]) == 2  # no model
    assert not (tmp_path / "x").exists()


# ---- what is refused, and nothing is left behind -----------------------------------------------


def test_models_without_per_layer_outputs_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="adapter"):
        wb.analyze(nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="resnet18"):
        wb.analyze("resnet18")
    with pytest.raises(ConfigError, match="timm model name"):
        wb.analyze("no_such_vit")
    with pytest.raises(ConfigError, match="num_prefix"):
        wb.analyze(nn.Linear(3, 3), adapter=lambda x: [x])
    with pytest.raises(ConfigError, match="num_prefix"):
        wb.analyze(TIMM, num_prefix=1)


def test_an_image_size_the_model_does_not_take_is_refused(timm_model, tmp_path, cache):
    with pytest.raises(ConfigError, match="image_size=64.*32, the only input size"):
        wb.analyze(timm_model, image_size=64)
    with pytest.raises(ConfigError, match="image_size"):
        wb.analyze(TIMM, model_kwargs=TINY, image_size=64)  # img_size=32 and image_size=64 disagree

    def flat(images):  # an adapter whose model takes 32 x 32 inputs only
        assert images.shape[-1] == 32, "this model takes 32 x 32 images"
        return [images.flatten(2).transpose(1, 2)] * 2

    with pytest.raises(ConfigError, match="image_size"):
        wb.analyze(nn.Identity(), adapter=flat, num_prefix=0, image_size=48, overrides=FAST, out=tmp_path / "a",
                   cache_dir=cache)
    assert not tmp_path.joinpath("a").exists() and not list(tmp_path.glob(".*"))


def test_missing_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path, trained):
    with pytest.raises(ConfigError, match="existing weights file"):
        wb.analyze(TIMM, model_kwargs=TINY, checkpoint=tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    torch.save(tiny_timm().state_dict(), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:1000])  # truncated
    with pytest.raises(DataError, match="corrupt.pt could not be read"):
        wb.analyze(TIMM, model_kwargs=TINY, checkpoint=corrupt)
    other = tmp_path / "other.pt"
    torch.save({**tiny_timm().state_dict(), "extra.weight": torch.zeros(1)}, other)
    with pytest.raises(ConfigError, match="unexpected keys"):
        wb.analyze(TIMM, model_kwargs=TINY, checkpoint=other)
    headless = tmp_path / "headless.pt"  # weights released without a classifier (DINO's, MAE's)
    torch.save({k: v for k, v in tiny_timm().state_dict().items() if not k.startswith("head.")}, headless)
    with pytest.raises(ConfigError, match="num_classes"):
        wb.analyze(TIMM, model_kwargs=TINY, checkpoint=headless)
    with pytest.raises(ConfigError, match="workbench run's checkpoint"):
        wb.analyze(TIMM, model_kwargs=TINY, checkpoint=trained.checkpoint)  # a workbench run's, given as timm weights
    with pytest.raises(ConfigError, match="workbench run's checkpoint"):
        wb.analyze(checkpoint=other)  # a plain state dict, given as a workbench run's
    with pytest.raises(ConfigError, match="checkpoints/last.ckpt"):
        wb.analyze(run=tmp_path)
    with pytest.raises(ConfigError, match="pretrained"):
        wb.analyze(TIMM, pretrained=True, checkpoint=other)


def test_settings_an_analysis_does_not_read_and_an_existing_directory_are_refused(timm_run, tmp_path):
    with pytest.raises(ConfigError, match="trains nothing"):
        wb.analyze(TIMM, model_kwargs=TINY, overrides=["optim.lr=0.1"])
    with pytest.raises(ConfigError, match="data.probe_size"):
        wb.analyze(TIMM, model_kwargs=TINY, overrides=["data.probe_size=0"])
    before = sorted(p.name for p in timm_run.path.iterdir())
    with pytest.raises(ConfigError, match="does not exist yet"):
        wb.analyze(TIMM, model_kwargs=TINY, out=timm_run.path)
    assert sorted(p.name for p in timm_run.path.iterdir()) == before


def test_a_failure_during_the_pass_leaves_nothing(tmp_path, cache):
    calls = []

    def fails_late(images):
        calls.append(len(images))
        if len(calls) > 2:  # the shape check and the probe pass work; the augmented views fail
            raise RuntimeError("out of memory")
        return [images.flatten(2).transpose(1, 2)] * 2

    with pytest.raises(RuntimeError, match="out of memory"):
        wb.analyze(nn.Identity(), adapter=fails_late, num_prefix=0, overrides=FAST, runs_dir=tmp_path / "runs",
                   name="late", cache_dir=cache)
    assert len(calls) == 3
    assert list((tmp_path / "runs").iterdir()) == []


def test_run_analysis_is_none_for_a_training_run(trained):
    assert trained.analysis is None
    assert isinstance(trained.diagnostics, pd.DataFrame)
