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
# # 07 · Pretrained ViTs, layer by layer: what does each layer keep?
#
# **The question.** A Vision Transformer pretrained with DINO, with MAE or with labels is a stack of
# blocks, each adding to one residual stream of tokens. What does each block keep of an image -- its
# colour, its texture, the shape of its largest object, how many objects it holds -- and what does
# it throw away? The other notebooks answer this for the small ViTs the workbench trains.
# `wb.analyze` runs the very same diagnostics pass (the training callback's own code) on **any**
# Vision Transformer: a timm model by name or as an object, a local weights file, a workbench run, or
# any module through a small adapter. It writes a run directory, so every figure of the series, the
# layer explorer and notebook 05 open it like a trained run.
#
# | scale | models | weights | probe images |
# |---|---|---|---|
# | `cpu` | `vit_tiny_patch16_224` and `deit_small_patch16_224`, built for 32 x 32 images with 8 x 8 patches and `DEPTH` blocks | random initialisation (no download needed) | `shapes` at 32 px |
# | `gpu` | `vit_small_patch16_224.dino` (DINO), `vit_base_patch16_224.mae` (MAE), `vit_small_patch16_224.augreg_in21k_ft_in1k` (supervised) | timm's pretrained weights (a machine online, or local files in `CHECKPOINTS`) | `shapes` generated at 224 px |
#
# ### What to expect with pretrained weights
#
# These are expectations from how each model was trained, for the `gpu` scale to test; nothing in
# this repository has measured them yet.
#
# * **DINO** (Caron et al. 2021) is a *latent* self-supervised objective: two augmented views of an
#   image must give the same output, and its augmentations include colour jitter and grayscale.
#   Colour is a nuisance it is taught to ignore: expect colour to be decodable in the early blocks
#   and to **fade in the late ones**, while invariance to the views rises with depth.
# * **MAE** (He et al. 2022) reconstructs masked pixels: its encoder must keep what the decoder needs
#   to paint a patch. Expect colour and texture to **stay decodable to the last layer**, and little
#   invariance to the views.
# * **Supervised** training names the ImageNet class: expect it to **keep the class** -- here the
#   shape of the large object, the mid-level factor closest to a class -- and to care less about the
#   rest.
#
# ### What the CPU scale shows
#
# No weights can be downloaded at the CPU scale, so it analyses **randomly initialised** small ViTs.
# That is not a stand-in for the pretrained models: it is the baseline every pretrained curve should
# be read against. What a random network keeps is what the architecture gives for free; only the
# difference from it is learned.

# %% tags=["parameters"]
SCALE = "cpu"  # cpu: random small ViTs on 32 px shapes, minutes on two cores | gpu: pretrained ViTs at 224 px
INTERACTIVE = True  # False in headless runs: static figures only (they survive HTML export)
RUNS_DIR = "../runs"
DATA_DIR = "../data"
SEED = 0  # the random initialisation of the CPU scale's models, and the diagnostics' seed
DEPTH = 0  # cpu: blocks of each random ViT (0: the scale's, 6)
IMAGE_SIZE = 0  # 0: the scale's (32 on the CPU, 224 on the GPU)
NUM_IMAGES = 0  # shapes generated (0: the scale's, 12,000); the probe set is the first PROBE_SIZE validation images
PROBE_SIZE = 0  # 0: the scale's, 1,000
CHECKPOINTS = {}  # gpu, offline: model label -> local weights file (torch.save state dict or .safetensors)
POOL = "cls"  # the token the comparisons read: "cls" or "mean" (of the patch tokens)
LAYOUT_POINTS = 1000  # probe images in the layer explorer
UMAP_EPOCHS = 200  # UMAP optimisation epochs per layout (None: umap-learn's default)
OVERRIDES = {}  # extra data.* / diagnostics.* / views.* settings of every analysis, e.g. {"diagnostics.probe_steps": 20}
SOLUTIONS = False  # True: the exercise solutions run their extra analyses too

# %%
import shutil

import pandas as pd
import timm
import torch

import workbench as wb
from workbench.analysis import headline, layouts, readouts
from workbench.models.adapters import load_weights

NOTEBOOK = "07_pretrained_layer_by_layer"
wb.plots.use_notebook_renderer()  # figures survive export to HTML

if SCALE == "cpu":
    side, depth = IMAGE_SIZE or 32, DEPTH or 6
    # label -> (timm name, timm.create_model arguments, pretrained)
    MODELS = {
        "vit_tiny-random": ("vit_tiny_patch16_224", {"img_size": side, "patch_size": 8, "depth": depth}, False),
        "deit_small-random": ("deit_small_patch16_224", {"img_size": side, "patch_size": 8, "depth": depth}, False),
    }
elif SCALE == "gpu":
    side = IMAGE_SIZE or 224
    kwargs = {} if side == 224 else {"img_size": side}  # timm resamples the position embeddings
    MODELS = {
        "dino": ("vit_small_patch16_224.dino", kwargs, True),
        "mae": ("vit_base_patch16_224.mae", kwargs, True),
        "supervised": ("vit_small_patch16_224.augreg_in21k_ft_in1k", kwargs, True),
    }
else:
    raise ValueError(f"SCALE={SCALE!r}: use 'cpu' or 'gpu'")
# shapes is generated at the models' input size; 1,000 of its validation images are the probe set
# (the one coherence pair section 6 reads)
data = {"data.shapes.num_images": NUM_IMAGES or 12000, "data.probe_size": PROBE_SIZE or 1000,
        "data.shapes.image_size": side, "diagnostics.coherence": ["shape:color"], "seed": SEED, **OVERRIDES}
pd.DataFrame({label: {"timm model": name, "arguments": args, "weights": "pretrained" if pretrained else
                      CHECKPOINTS.get(label, "random initialisation")}
              for label, (name, args, pretrained) in MODELS.items()}).T

# %% [markdown]
# ## 1 · The models
#
# Each model is built with timm, exactly as one would to use it. `pretrained=True` downloads timm's
# weights; on a machine without internet access, put local files in `CHECKPOINTS`: they are read
# with `torch.load(weights_only=True)` (or safetensors) through timm's own checkpoint filter, which
# also converts the original DINO and MAE release formats.

# %%
models = {}
for label, (name, args, pretrained) in MODELS.items():
    torch.manual_seed(SEED)  # a random initialisation is part of the experiment
    checkpoint = CHECKPOINTS.get(label)
    models[label] = timm.create_model(name, pretrained=pretrained and checkpoint is None, **args).eval()
    if checkpoint:
        load_weights(models[label], checkpoint)
pd.DataFrame({label: {"blocks": len(m.blocks), "width": m.embed_dim, "prefix tokens": m.num_prefix_tokens,
                      "parameters (M)": round(sum(p.numel() for p in m.parameters()) / 1e6, 2),
                      "mean": timm.data.resolve_model_data_config(m)["mean"]}
              for label, m in models.items()}).T

# %% [markdown]
# ## 2 · What is "a layer" of a timm ViT?
#
# `wb.analyze` reads the tokens through timm's own `forward_intermediates`, one forward pass per batch:
#
# * **layer 0** is what enters the first block: the patch embedding with positions and the prefix
#   tokens (CLS, and registers or DeiT's distillation token where the model has them);
# * **layers 1..depth** are the block outputs, the raw residual stream (`norm=False`), prefix tokens
#   first;
# * **the last layer** is reported *after* the model's final norm -- the representation the model
#   hands to its head, the value of `forward_features`. The workbench's own ViT reports its last
#   layer the same way.
#
# timm's `norm=True` applies that final norm to *every* intermediate; its last intermediate is then
# exactly `forward_features`. The check below is the one the test suite makes too.

# %%
model = next(iter(models.values()))
x = torch.randn(4, 3, side, side)
with torch.no_grad():
    final, intermediates = model.forward_intermediates(x, norm=True, output_fmt="NLC", return_prefix_tokens=True)
    patches, prefix = intermediates[-1]
    gap = (torch.cat([prefix, patches], dim=1) - model.forward_features(x)).abs().max().item()
print(f"{len(intermediates)} intermediates of shape {tuple(patches.shape)} (+ {prefix.shape[1]} prefix tokens); "
      f"largest difference between the last one (norm=True) and forward_features: {gap:.2e}")

# %% [markdown]
# ## 3 · The analyses
#
# One call per model. The probe images are resized (not here: `shapes` is generated at the models'
# size) and normalised as each model's own data configuration says; there is no centre crop, since
# the factors describe the whole scene. Everything the training callback measures is measured:
# collapse, label and factor probes, coherence, invariance to two augmented views (the workbench's
# default views: crops, flips, colour jitter, grayscale, blur), token metrics, CKA.

# %%
root = headline.notebook_dir(NOTEBOOK, RUNS_DIR)
runs = {}
for label, m in models.items():
    shutil.rmtree(root / label, ignore_errors=True)  # this notebook's own earlier analysis: redone
    runs[label] = wb.analyze(m, overrides=data, out=root / label, cache_dir=DATA_DIR)
pd.DataFrame({label: {"directory": str(run.path), "probe images": run.analysis["data"]["probe_images"],
                      "input": run.analysis["preprocessing"]["image_size"],
                      "diagnostics s": run.summary["diagnostics_s"], **run.summary["headline"]}
              for label, run in runs.items()}).T

# %% [markdown]
# Each directory holds `config.yaml` (the data, views and diagnostics settings and the model's shape),
# `analysis.yaml` (what was analysed: the model, its weights, which tokens each layer is, the
# preprocessing), `diagnostics.csv` and `embeddings/`. Point notebook 05 at one (`RUN_DIR`) to see
# every panel, or run the same from a shell:
#
# ```bash
# python -m workbench analyze --timm vit_small_patch16_224.dino --pretrained --out runs/dino-s16
# python -m workbench analyze --timm vit_tiny_patch16_224 --model-arg img_size=32 --model-arg patch_size=8 --out runs/tiny
# ```

# %%
pd.Series(runs[next(iter(runs))].analysis["model"]).to_frame("analysis.yaml: model")

# %% [markdown]
# ## 4 · Which factors each layer keeps
#
# A linear probe per layer for every ground-truth factor of `shapes` (accuracy for a categorical
# factor, R² for a continuous one), one figure per model. Blue: low level (colour, texture, noise);
# green: mid level (shape, size, position, orientation); red: high level (count, same shape).
# **How to read it:** a line that falls with depth is a factor the model discards; a line that rises
# is one it builds. With pretrained weights, compare DINO's colour line with MAE's.

# %%
for label, run in runs.items():
    wb.plots.decodability(run, pool=POOL).update_layout(title=f"{label}: decodability by layer ({POOL})").show()

# %% [markdown]
# The models side by side, one factor at a time: colour (low level), the large object's shape (mid
# level, the label), and the count (high level). The dotted line in your head is chance: 1/6 for
# colour, 1/4 for shape, 1/3 for the count.

# %%
for factor in ("color", "shape", "count"):
    wb.plots.metric_by_layer(list(runs.values()), f"factor/{factor}", pool=POOL, group_seeds=False).show()

# %% [markdown]
# ## 5 · Invariance: do two views of one image become one point?
#
# `invariance` is the cosine similarity of two augmented views of the same image minus that of two
# different images (0: the views are no closer than strangers; towards 1: the views coincide and
# images stay apart). A latent objective such as DINO is trained to raise it; MAE is not.

# %%
wb.plots.metric_by_layer(list(runs.values()), "invariance", pool=POOL, group_seeds=False)

# %% [markdown]
# ## 6 · Coherence: is "shape" one direction, or one per colour?
#
# For each colour separately, a probe for the shape; `coherence/shape|color/normalised` is the
# agreement of those per-colour probe directions over what two halves of one colour agree on (1: one
# shape concept shared by every colour; 0: a separate one per colour, a *fractured* representation).

# %%
wb.plots.metric_by_layer(list(runs.values()), "coherence/shape|color/normalised", pool=POOL, group_seeds=False)

# %% [markdown]
# ## 7 · How much does each block change the representation?
#
# Linear CKA between every pair of layers of the first model (1: the same representation up to a
# rotation and a scale). Pretrained ViTs show stages -- bright blocks along the diagonal -- with the
# late layers far from the first.

# %%
first = next(iter(runs))
wb.plots.cka(runs[first], pool="mean")

# %% [markdown]
# ## 8 · The layer explorer
#
# The probe images laid out in 2-D (UMAP) at every layer of the first model, coloured by colour; the
# slider walks through the layers and the menu colours the points by any other factor. Islands of
# one colour that dissolve in the late layers are colour being discarded; islands of one shape that
# form late are shape being built. In JupyterLab, `widgets.layer_explorer(runs[...])` opens the same
# with every model's directory in its run picker.

# %%
laid_out = layouts.compute_layouts(runs[first], pool=POOL, max_points=LAYOUT_POINTS, n_epochs=UMAP_EPOCHS,
                                   progress=INTERACTIVE)
wb.plots.layer_explorer(laid_out, probe=runs[first].probe(), colour_by="color")

# %% [markdown]
# ## 9 · The numbers behind the figures
#
# Per model: colour after the first block and at the last layer, shape and count at the last layer,
# invariance and shape-by-colour coherence at the last layer, and the smallest CKA between the
# patch embedding (layer 0, mean of the patch tokens) and any block before the last -- how far the
# blocks move the residual stream before the final norm. Recorded in
# `RUNS_DIR/07_pretrained_layer_by_layer/headline.json`.

# %%
numbers = {"forward_features_gap": gap}
for label, run in runs.items():
    depth_of = run.config.model.depth
    colour = readouts.by_layer(run, "factor/color", POOL)
    table = run.diagnostics
    to_first = table[(table["pool"] == "mean") & (table["metric"] == "cka/0") & table["layer"].between(1, depth_of - 1)]
    numbers.update({
        f"factor/color/{label}/first_block": colour.loc[1], f"factor/color/{label}/last_layer": colour.iloc[-1],
        f"factor/color/{label}/min_over_layers": colour.min(),
        f"factor/shape/{label}/last_layer": readouts.at_last_layer(run, "factor/shape", POOL),
        f"factor/count/{label}/last_layer": readouts.at_last_layer(run, "factor/count", POOL),
        f"invariance/{label}/last_layer": readouts.at_last_layer(run, "invariance", POOL),
        f"coherence/{label}/last_layer": readouts.at_last_layer(run, "coherence/shape|color/cosine", POOL),
        f"cka_to_layer0/{label}/min_before_last": to_first["value"].min(),
    })
headline.record(NOTEBOOK, numbers, runs_dir=RUNS_DIR, replace=True)
pd.DataFrame({label: {k.replace(f"/{label}", ""): v for k, v in numbers.items() if f"/{label}/" in k}
              for label in runs}).round(3)

# %% [markdown]
# **What the CPU scale shows** (random initialisation; the numbers are those of the CPU default,
# and `tests/test_notebook_series.py` checks each statement at a small size):
#
# 1. **The blocks of a random ViT barely move the residual stream.** Every block before the last is
#    within a CKA of 0.9 of the patch embedding (0.991 for vit_tiny, 0.994 for deit_small): timm
#    initialises every linear layer of a block with a standard deviation of 0.02, so a random block
#    adds little to the stream it reads. The last layer differs more, because it is reported after
#    the final norm. A flat curve in the figures above is therefore the architecture's baseline; in a
#    pretrained model, every departure from it is learned.
# 2. **Colour is free.** A linear probe reads the colour far above chance (1/6) at every layer of
#    both random models (0.87 to 0.96): the patch embedding alone is a random linear map of the
#    pixels, and the hue survives it. So a pretrained model whose late layers lose colour has
#    *learned* to discard it.
# 3. **Shape is harder.** The large object's shape (the label) stays below the colour at the last
#    layer (0.40 and 0.56, against 0.90 and 0.96): random features hold some of it, far from the 0.91
#    test accuracy the quickstart's ViT reaches after eight epochs of training.
# 4. **No invariance without training.** The two views of an image are no closer than two different
#    images (invariance 0.006 at the last layer, where 0 is none).
#
# With the `gpu` scale's pretrained weights, read the same figures against these baselines: DINO's
# colour line is expected to fall below its first-block value in the late layers, MAE's to stay up,
# and the supervised model's shape line to rise above both.

# %% [markdown]
# ## Exercises
#
# 1. **Where does colour peak?** For each model, find the layer where colour is decoded best
#    (`readouts.peak_layer`). With random weights, is the peak meaningful? Compare the spread of the
#    colour curve with its level.
# 2. **The other token.** Set `POOL = "mean"` and compare colour and shape at the last layer with the
#    CLS token's. Which token does a random ViT's final norm change more?
# 3. **A model of your own, through an adapter.** Analyse the first model through
#    `adapter=` instead of timm's `forward_intermediates`: a function returning the token list of
#    every *second* block. Check that its layer 1 equals the timm analysis' layer 2.
# 4. **Your own trained run on the same probe set.** Analyse a run of notebook 00 or 05 with
#    `wb.analyze(run="runs/<name>", data=runs[first].config.data)` and add it to the comparison
#    figures: what did training add, and at which layers?

# %% tags=["solution"]
# Exercise 1: the layer of the best colour probe, and how much the colour curve moves at all.
pd.DataFrame({label: {"peak layer": readouts.peak_layer(run, "factor/color", POOL),
                      "max - min": readouts.by_layer(run, "factor/color", POOL).agg(lambda s: s.max() - s.min())}
              for label, run in runs.items()}).T

# %% tags=["solution"]
# Exercise 2: the CLS token and the mean of the patch tokens, side by side at the last layer.
pd.DataFrame({(label, pool): {f: readouts.at_last_layer(run, f"factor/{f}", pool) for f in ("color", "shape", "count")}
              for label, run in runs.items() for pool in ("cls", "mean")}).T.round(3)

# %% tags=["solution"]
# Exercise 3: every second block through an adapter (layer 0 first; the last entry normed as the model reads it out).
m = models[first]


def every_second_block(images):
    entering = m.norm_pre(m._pos_embed(m.patch_embed(images)))
    out, h = [entering], entering
    for i, block in enumerate(m.blocks):
        h = block(h)
        if i % 2 == 1:
            out.append(h)
    out[-1] = m.norm(out[-1]) if len(m.blocks) % 2 == 0 else out[-1]
    return out


if SOLUTIONS:
    light = {**data, "diagnostics.probe_steps": 10, "diagnostics.coherence": [], "diagnostics.token_images": 0}
    shutil.rmtree(root / "every-second-block", ignore_errors=True)
    # a timm module brings its own data configuration (mean, std, interpolation) to the adapter path too
    second = wb.analyze(m, adapter=every_second_block, num_prefix=m.num_prefix_tokens, overrides=light,
                        out=root / "every-second-block", cache_dir=DATA_DIR)
    a = second.embeddings(0, "l1_cls")["l1_cls"]
    b = runs[first].embeddings(0, "l2_cls")["l2_cls"]
    print("adapter layer 1 = timm layer 2:", bool(abs(a.astype(float) - b.astype(float)).max() < 1e-2))

# %% tags=["solution"]
# Exercise 4 (needs a workbench run, e.g. the quickstart's): uncomment with its directory.
#   trained = wb.analyze(run="../runs/<name>", data=runs[first].config.data, out=root / "trained", cache_dir=DATA_DIR)
#   wb.plots.metric_by_layer([*runs.values(), trained], "factor/color", pool=POOL, group_seeds=False)
# The trained run's probe images are these: same data settings, same generated scenes.
