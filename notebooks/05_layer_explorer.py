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
# # 05 · Layer explorer: open any run and look at every layer
#
# The other notebooks each ask one question. This one is the microscope they all share: point it at
# any run directory and it shows, **layer by layer**, what the network made of the held-out probe
# images.
#
# * **Where does the label appear?** The layer explorer lays the probe set out in 2-D at every layer;
#   drag the slider and watch when images of one class gather into islands.
# * **What survives with depth?** Colour the same points by a low-level factor (colour, texture) or a
#   high-level one (count): a factor that organises early layers and dissolves later is being
#   discarded.
# * **Is anything collapsing?** The collapse dashboard, the spectra and the CKA matrix tell a layer
#   that uses many directions from one squeezed into a few.
#
# Everything below reads the run directory only (`config.yaml`, `metrics.csv`, `diagnostics.csv`,
# `embeddings/`); nothing is retrained unless there is no run to open. The 2-D layouts are computed
# once (UMAP) and cached in `<run>/layouts/`.

# %% tags=["parameters"]
RUN_DIR = ""  # a run directory; empty: the newest run with saved embeddings under RUNS_DIR
RUNS_DIR = "../runs"
DATA_DIR = "../data"
INTERACTIVE = True  # False in headless runs: static figures only (they survive HTML export)
POOL = "mean"  # which embedding to show: "mean" (of the patch tokens) or "cls"
COLOUR_BY = "label"  # label, or any factor: color, texture, shape, size, count, ...
LAYOUT_METHOD = "warm"  # how layouts are tied across layers: warm | procrustes | aligned | independent
LAYOUT_POINTS = 2000  # probe images laid out (a fixed random subset when the probe set is larger)
LAYOUT_EPOCHS = None  # saved epochs to lay out, e.g. [0, 4, 8]; None: the first and the last
UMAP_EPOCHS = 200  # UMAP optimisation epochs per layout (None: umap-learn's default, 500 here)
# Only used when RUNS_DIR holds no run yet: a small run is trained first.
SCALE = "cpu"  # "cpu": minutes on two cores; "gpu": the CIFAR-10-scale settings of the next cell
PRESET = "supervised"
DATASET = "shapes"
MAX_EPOCHS = 4
NUM_IMAGES = 6000  # shapes only
PATCH_SIZE = 8
WIDTH = 64
DEPTH = 4
HEADS = 4
BATCH_SIZE = 128
PROBE_SIZE = 1000
SEED = 0

# %%
if SCALE == "gpu":  # CIFAR-10 scale: a 6-layer ViT on 4 x 4 patches of the real images
    DATASET, PATCH_SIZE, WIDTH, DEPTH, HEADS, BATCH_SIZE, MAX_EPOCHS, PROBE_SIZE = "cifar10", 4, 192, 6, 6, 256, 100, 5000
    LAYOUT_POINTS, UMAP_EPOCHS = 5000, None

import pandas as pd

import workbench as wb
from workbench import widgets
from workbench.analysis import headline

wb.plots.use_notebook_renderer()  # figures survive export to HTML

# %% [markdown]
# ## 1 · The run
#
# With `RUN_DIR` empty the notebook opens the newest run under `RUNS_DIR` (or trains a small one
# when there is none yet: the `supervised` preset on `shapes`, a few minutes on two CPU cores).
# Any run of the series works; runs trained with `diagnostics.save_embeddings=false` have no
# embeddings to lay out.

# %%
run_dir = RUN_DIR or widgets.newest_run(RUNS_DIR)
if not run_dir:
    config = wb.make_config(PRESET, {
        "data.name": DATASET, "data.shapes.num_images": NUM_IMAGES, "data.batch_size": BATCH_SIZE,
        "data.probe_size": PROBE_SIZE, "data.download": SCALE == "gpu", "model.patch_size": PATCH_SIZE,
        "model.width": WIDTH, "model.depth": DEPTH, "model.heads": HEADS, "trainer.max_epochs": MAX_EPOCHS,
        "trainer.enable_progress_bar": INTERACTIVE, "seed": SEED,
        "runs_dir": str(headline.notebook_dir("05_layer_explorer", RUNS_DIR)),
    })
    run_dir = wb.fit(config, cache_dir=DATA_DIR).path
run = wb.load_run(run_dir)
config = run.config
print(f"run {run.name}: preset {config.preset or '-'}, data {config.data.name}, "
      f"ViT depth {config.model.depth} width {config.model.width}, objectives {', '.join(config.active_objectives())}")
saved = run.embedding_epochs()
layout_epochs = LAYOUT_EPOCHS or sorted({saved[0], saved[-1]})
print("saved embeddings at epochs", saved, "- laid out:", layout_epochs)
pd.Series(run.summary.get("headline", {}), name="value", dtype=float).to_frame()

# %% [markdown]
# ## 2 · The layer explorer
#
# Every point is one probe image (held out from training). Its position is a 2-D UMAP layout of
# that layer's embeddings (`POOL`): images the layer represents alike sit close together. The layouts
# of consecutive layers are tied together (`LAYOUT_METHOD`), so a point moves only as far as the
# representation made it move.
#
# **How to read it.** Drag the *layer* slider from 0 (the patch embedding: little more than pixels)
# to the last block. With *colour by* = `label`, look for the layer where the colours separate into
# islands: that is where the class becomes easy to read. Then colour by `color` or `texture`
# (low-level), `shape` or `size` (mid-level), `count` (high-level): a factor whose colours stay
# sorted at the last layer is still encoded there. Hover over (or click) a point to see its image,
# enlarged, and all its factors; a point in the "wrong" island is often an ambiguous image.
#
# Interactive: run picker (every run under the same directory), pool, epoch and layer sliders,
# colour-by. Static (`INTERACTIVE = False`, or the exported HTML): plotly's own layer slider and
# colour-by menu, with every layout embedded in the page.

# %%
explorer = widgets.layer_explorer(run, interactive=INTERACTIVE, pool=POOL, colour_by=COLOUR_BY, epochs=layout_epochs,
                                  method=LAYOUT_METHOD, max_points=LAYOUT_POINTS, n_epochs=UMAP_EPOCHS)
explorer

# %% [markdown]
# **Caveats.** UMAP keeps neighbourhoods, not distances: the size of an island and the gap between
# two islands mean little, and a layer that looks "mixed" may still be linearly separable in its
# full dimension (the decodability plot below measures that directly). The layouts are only as
# good as the probe set is large; for a few hundred points, trust the coarse structure only.

# %% [markdown]
# ## 3 · The collapse dashboard
#
# One heat-map per collapse metric, **x = epoch, y = layer**, bright where the layer is healthy.
#
# * `rankme` and `effective_rank`: how many directions of the embedding space the probe set really
#   uses (1 = complete collapse: every image the same vector);
# * `std_l2`: the spread of the l2-normalised embeddings (0 = collapsed; about 1/sqrt(width) when
#   spread);
# * `uniformity`: how evenly the points cover the sphere (lower is healthier).
#
# A row darkening from left to right is a layer collapsing during training; a column darkening from
# bottom to top is collapse building up with depth. Interactive: pick other metrics (`linear_acc`,
# `knn_acc`, `token_cosine`, ...), the pool and the epoch; the spectra and the decodability of the
# chosen epoch sit below the heat-maps.

# %%
dashboard = widgets.collapse_dashboard(run, interactive=INTERACTIVE, pool=POOL)
dashboard

# %% [markdown]
# ## 4 · Spectra
#
# The eigenvalues of each layer's covariance (of the l2-normalised probe embeddings), largest first,
# on a log scale, one line per layer from dark (shallow) to bright (deep). A healthy layer decays
# slowly; a layer that falls off a cliff after k eigenvalues lives in a k-dimensional subspace
# (*dimensional collapse*), even if its loss looks fine.

# %%
wb.plots.spectra(run, pool=POOL)

# %% [markdown]
# ## 5 · Decodability: where does each level of abstraction live?
#
# A linear probe per layer for the label (black) and for every ground-truth factor (blue: low
# level, green: mid level, red: high level), scored by accuracy (categorical) or R² (continuous).
# The goal of the essays behind this workbench ([docs/concepts.md](../docs/concepts.md)) is a last layer where every level is still readable; a supervised network often
# keeps the label and drops the rest.

# %%
wb.plots.decodability(run, pool=POOL)

# %% [markdown]
# ## 6 · CKA: which layers compute the same thing?
#
# Linear CKA between every pair of layers (1: the same representation up to rotation and scale).
# Bright blocks on the diagonal are stages; a bright last row means the top layers add little.

# %%
wb.plots.cka(run, pool=POOL)

# %% [markdown]
# ## 7 · Loss curves
#
# The total loss and every objective's terms, training per logged step and validation per epoch.
# Read them together with the heat-maps: a latent loss that reaches a flat minimum while `rankme`
# darkens is the signature of collapse.

# %%
wb.plots.loss_curves(run, smooth=5)

# %% [markdown]
# ## 8 · The numbers behind the figures
#
# The last epoch's label probe and RankMe per layer, recorded in
# `RUNS_DIR/05_layer_explorer/headline.json` so the claims above can be checked without the figures.

# %%
table = run.diagnostics
last = table[(table["epoch"] == table["epoch"].max()) & (table["pool"] == POOL)]
per_layer = last[last["metric"].isin(["linear_acc", "rankme", "std_l2"])].pivot_table(
    index="layer", columns="metric", values="value")
top = per_layer.index.max()
headline.record("05_layer_explorer", {
    "last_layer_linear_acc": per_layer.loc[top, "linear_acc"],
    "last_layer_rankme": per_layer.loc[top, "rankme"],
    "best_layer_linear_acc": per_layer["linear_acc"].max(),
}, runs_dir=RUNS_DIR, replace=True)
per_layer

# %% [markdown]
# ## Exercises
#
# 1. At which layer does a linear probe first reach 90% of its best label accuracy? Does the layer
#    explorer agree about where the islands form?
# 2. Colour by `color`, then by `count`. Which of the two is still sorted at the last layer?
# 3. Train a run with the `toy-collapse` preset and open it here (set `RUN_DIR`). Which figure shows
#    the collapse first, and at which layer?
# 4. Switch `POOL` to `"cls"`. Which pool separates the labels earlier, and why could the CLS token
#    at layer 1 carry less than the mean of the patch tokens?

# %% tags=["solution"]
# 1. The first layer whose label probe reaches 90% of the best one.
acc = per_layer["linear_acc"]
print("first layer at 90% of the best label accuracy:", int(acc[acc >= 0.9 * acc.max()].index.min()))

# %% tags=["solution"]
# 2. Decodability of colour and count at the last layer (accuracy of a linear read-out).
factors = last[last["metric"].isin(["factor/color", "factor/count"]) & (last["layer"] == top)]
factors.set_index("metric")["value"]

# %% tags=["solution"]
# 3. Train the toy and compare its RankMe per layer with this run's (a few minutes on a CPU).
#    toy = wb.fit(preset="toy-collapse", overrides={"runs_dir": RUNS_DIR, "trainer.max_epochs": 4},
#                 cache_dir=DATA_DIR)
#    widgets.collapse_dashboard(toy, interactive=INTERACTIVE)   # rankme -> 1 at the last layers
# The heat-map of `rankme` darkens first (within an epoch); the layouts shrink to one blob later.

# %% tags=["solution"]
# 4. Label accuracy per layer for both pools, side by side (layer 0 has no CLS: its token is a constant).
both = table[(table["epoch"] == table["epoch"].max()) & (table["metric"] == "linear_acc")]
both.pivot_table(index="layer", columns="pool", values="value")
