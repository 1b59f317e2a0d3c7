# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Quickstart: train a small ViT and look at what it learned
#
# This notebook is the shortest path through the workbench:
#
# 1. generate the embedded **`shapes`** dataset, whose images carry known ground-truth *factors*
#    at three levels of abstraction;
# 2. train a small Vision Transformer with one objective (the `supervised` preset);
# 3. read the loss and accuracy curves from the **run directory** the training leaves behind;
# 4. explore what each layer makes of held-out images with the **layer explorer**.
#
# Everything here is a call into the `workbench` library; the notebook holds no training logic.
# With the default parameters (`SCALE = "cpu"`) it finishes in about a minute and a half on two
# CPU cores. `SCALE = "gpu"` trains a 9-layer ViT on CIFAR-10 (4 x 4 patches) instead; put the
# official python batches (`cifar-10-batches-py/`) under `DATA_DIR` first.

# %% tags=["parameters"]
SCALE = "cpu"  # cpu: `shapes` on two CPU cores, about a minute and a half | gpu: CIFAR-10 scale, one GPU
PRESET = "supervised"  # see `python -m workbench presets`
INTERACTIVE = True  # False in headless runs: no progress bar, static figures
SEED = 0
DATASET = ""  # empty: the scale's (shapes | cifar10); or digits | fashion_mnist | ...
MAX_EPOCHS = 0  # 0: the scale's default (likewise every size below)
NUM_IMAGES = 0  # shapes only: images generated (train + val + test)
PATCH_SIZE = 0  # 8 on the CPU scale (a 4 x 4 grid of tokens), 4 on the GPU scale
WIDTH = 0
DEPTH = 0
HEADS = 0
BATCH_SIZE = 0
LR = 0.0
RUNS_DIR = "../runs"
DATA_DIR = "../data"  # generated `shapes` are cached here; the GPU scale reads CIFAR-10's python batches here
RUN_NAME = ""  # empty: a generated name
EXPLORE_POINTS = 1000  # probe images the layer explorer lays out
UMAP_EPOCHS = 200  # UMAP optimisation epochs per layer (None: umap-learn's default, slower)
SOLUTIONS = False  # True: the exercise solutions train their extra runs too

# %%
import pandas as pd

import workbench as wb
from workbench import widgets
from workbench.analysis import readouts
from workbench.analysis.notebook import notebook_settings
from workbench.figures.report import config_diff

NOTEBOOK = "00_quickstart"
wb.plots.use_notebook_renderer()  # figures survive export to HTML

# The scale's settings (workbench.analysis.notebook.SCALES); a non-empty parameter above replaces the scale's value.
common = notebook_settings(NOTEBOOK, SCALE, seed=SEED, interactive=INTERACTIVE, data_dir=DATA_DIR, sizes={
    "data.name": DATASET, "data.shapes.num_images": NUM_IMAGES, "model.patch_size": PATCH_SIZE, "model.width": WIDTH,
    "model.depth": DEPTH, "model.heads": HEADS, "data.batch_size": BATCH_SIZE, "optim.lr": LR,
    "trainer.max_epochs": MAX_EPOCHS}).overrides
config = wb.make_config(PRESET, {**common, "runs_dir": RUNS_DIR, "name": RUN_NAME})
config_diff(config)

# %% [markdown]
# The table lists only what this run changes from its preset (`value`) next to the preset's own
# value; everything else is the preset as it is. The whole config, about a hundred lines, is one call
# away: `print(config.to_yaml())`. After training, `run.path / "config.yaml"` holds it, and re-running
# that file reproduces the run.

# %% [markdown]
# ## 1 · The data
#
# `shapes` is generated from a seed (no download) and cached under `data/`. Each image carries a
# vector of factors:
#
# * **low level** – colour, texture (stripes), pixel noise;
# * **mid level** – the large object's shape, size, position and orientation;
# * **high level** – how many objects there are, and whether they all share one shape.
#
# The class label is one categorical factor (`data.label`, the large object's shape by default).
# Later notebooks ask, layer by layer, which of these factors a trained network still encodes.

# %%
data = wb.data.load_dataset(config.data, cache_dir=DATA_DIR)
print(f"{data.name}: {len(data.train)} images of shape {data.image_shape}, classes {data.classes}")
pd.DataFrame(
    [{"factor": f.name, "level": f.level, "kind": f.kind,
      "values": ", ".join(f.values) if f.values else f"{f.range[0]:.2f} .. {f.range[1]:.2f}",
      "meaning": f.description} for f in data.factors]
)

# %%
sample = slice(0, 16)
wb.plots.sample_grid(
    data.train.images[sample].numpy(),
    None if data.train.factors is None else data.train.factors[sample].numpy(),
    data.factors,
    labels=None if data.train.labels is None else [data.classes[i] for i in data.train.labels[sample]],
    title="The first 16 images (hover for every factor)",
)

# %% [markdown]
# ## 2 · Train
#
# `wb.fit` validates the config, builds the data module (the whole dataset sits on the training
# device as one uint8 tensor), the ViT and the objectives, trains with Lightning, evaluates on the
# test split, and returns a `Run`: a handle on the run directory
#
# ```
# runs/<name>/config.yaml   metrics.csv   summary.json   checkpoints/last.ckpt
# ```

# %%
run = wb.fit(config, cache_dir=DATA_DIR)
print("run directory:", run.path)
print("wall time: {:.0f} s on {}".format(run.summary["wall_s"], run.summary["device"]))

# %% [markdown]
# ## 3 · Curves
#
# Left: the loss terms (each objective logs its terms separately, `train/<objective>/<term>`).
# Middle: training accuracy per step and validation accuracy per epoch. Right, on an axis of its
# own: the cheap collapse monitors computed on training batches (`train/monitor/rankme`: how many
# directions the batch's embeddings use, up to the width; `train/monitor/std_l2`). What to look for:
#
# * the training loss falls quickly from `log(#classes)`; if it stays flat, the learning rate is
#   too high or too low;
# * validation accuracy tracking training accuracy means no over-fitting yet (the data is
#   generated, so more images are always one parameter away).

# %%
wb.plots.training_curves(run, smooth=5)

# %%
headline = run.summary["headline"]
print(f"test accuracy: {headline.get('test/supervised/acc', float('nan')):.3f}")
pd.Series(headline, name="value").to_frame()

# %% [markdown]
# ## 4 · Explore: what does each layer see?
#
# Before and after training, the run embedded a fixed set of held-out *probe* images at every
# layer and saved them (`embeddings/` in the run directory). The layer explorer lays those
# embeddings out in 2-D (UMAP), one layout per layer, each tied to the previous one so that a point
# moves only as far as the layer moved it.
#
# * Drag the **layer** slider from 0 (the patch embedding, close to raw pixels) to the last block:
#   the colours (the label) should go from mixed to separated islands.
# * Change **colour by** to a factor such as `color` or `count`: a factor still sorted at the last
#   layer is one the network kept; one that is mixed there was thrown away.
# * In JupyterLab (`INTERACTIVE = True`), hover over or click a point to see its image and factors.
#
# UMAP keeps neighbourhoods, not distances: read which points sit together, not how far apart the
# islands are. Notebook `05_layer_explorer` opens any run with every panel.

# %%
widgets.layer_explorer(run, interactive=INTERACTIVE, epochs=run.embedding_epochs()[-1:],
                       max_points=EXPLORE_POINTS, n_epochs=UMAP_EPOCHS)

# %% [markdown]
# ## Exercises
#
# 1. Set `data.label` to `count` (`config = config.with_overrides({"data.label": "count"})`):
#    is counting objects harder than naming the large object's shape for this model?
# 2. Double `DEPTH` and halve `WIDTH`. Which trains faster on your machine, which ends higher?
# 3. Train on real data: `DATASET = "digits"` (scikit-learn's 8 x 8 digits: use `PATCH_SIZE = 2`),
#    or `"fashion_mnist"` (28 x 28: `PATCH_SIZE = 4` or `7`).
# 4. Open `metrics.csv` of your run with pandas and find the step where training accuracy first
#    exceeds 90%.
# 5. In the layer explorer, colour by `shape` (the label), then by `color`. At which layer do the
#    shapes form islands, and is colour still sorted there?

# %% tags=["solution"]
# Exercise 1: the same model and data, labelled by the number of objects.
if SOLUTIONS:
    counting = wb.fit(config.with_overrides({"data.label": "count", "name": ""}), cache_dir=DATA_DIR)
    print("test accuracy, shape: {:.3f}  count: {:.3f}".format(
        run.summary["headline"]["test/supervised/acc"], counting.summary["headline"]["test/supervised/acc"]))

# %% tags=["solution"]
# Exercise 2: twice as deep, half as wide (about a quarter fewer parameters per block pair).
if SOLUTIONS:
    deep = wb.fit(config.with_overrides({"model.depth": 2 * config.model.depth, "model.width": config.model.width // 2,
                                         "model.heads": max(1, config.model.heads // 2), "name": ""}),
                  cache_dir=DATA_DIR)
    display(pd.DataFrame({label: {"wall s": r.summary["wall_s"], "test acc": r.summary["headline"]["test/supervised/acc"]}
                          for label, r in {"as trained": run, "deep and narrow": deep}.items()}).T.round(3))

# %% tags=["solution"]
# Exercise 3: scikit-learn's digits, 8 x 8 images in 2 x 2 patches.
if SOLUTIONS:
    digits = wb.fit(config.with_overrides({"data.name": "digits", "model.patch_size": 2, "name": ""}),
                    cache_dir=DATA_DIR)
    print("digits test accuracy: {:.3f}".format(digits.summary["headline"]["test/supervised/acc"]))

# %% tags=["solution"]
# Exercise 4: the first logged step at which training accuracy exceeds 90%.
if "train/supervised/acc" in run.metrics:
    accuracy = run.metrics.set_index("step")["train/supervised/acc"].dropna()
    above = accuracy[accuracy > 0.9]
    print("first logged step above 90%:", int(above.index[0]) if len(above) else "none")
else:  # a run shorter than one logging interval (`trainer.log_every_n_steps`) logs no training rows
    print("no training accuracy logged")

# %% tags=["solution"]
# Exercise 5: the shape (the label) is read linearly from each layer; colour decodability per layer
# says whether the network still keeps it where the shapes have separated.
if "color" in readouts.factor_names(run):
    display(pd.DataFrame({"shape (linear probe)": readouts.by_layer(run, "linear_acc", pool="cls"),
                          "color": readouts.by_layer(run, "factor/color", pool="cls")}).round(3))
