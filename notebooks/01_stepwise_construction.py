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
# # 01 · Step-wise construction: which levels of abstraction reach the last layer?
#
# **The question.** A network trained end to end is told only what its *last* layer must do; what
# the intermediate layers build on the way is left to the optimiser. The essays behind this workbench ([docs/concepts.md](../docs/concepts.md)) ask whether we can
# instead *supervise the construction*: put a loss on every layer so that semantics are built step
# by step, and end with a last layer that still holds every level of abstraction -- colour and
# texture (low), shape, size and position (mid), the number of objects (high).
#
# This notebook trains five recipes on the same data, model and budget, and measures, **at every
# layer**, how well a linear read-out recovers each ground-truth factor of the `shapes` images.
#
# | run | preset | the loss | what it tests |
# |---|---|---|---|
# | `end-to-end` | `supervised` | cross-entropy of a linear head on the last layer | the baseline |
# | `deep-supervision` | `stepwise-deepsup` | one label head per layer, losses summed | semantics forced early |
# | `pixel-ladder-fine-to-coarse` | `stepwise-pixel-ladder` | layer $l$ reconstructs hidden patches of a target that gets *coarser* with depth | LocalMIM's ladder, no labels |
# | `pixel-ladder-coarse-to-fine` | same, `direction: coarse_to_fine` | the target gets *finer* with depth ("blob, then lines, then figure") | the reverse ladder |
# | `local-greedy` | `local-greedy` | deep supervision with the gradient stopped between blocks | greedy local learning |
#
# ### The method in four equations
#
# Write $h_l$ for the tokens after block $l$ ($h_0$: the patch embedding, $h_L$: the last layer) and
# $\bar h_l$ for their pooled vector (the CLS token by default).
#
# * **End to end:** $\mathcal{L} = \mathrm{CE}(W_L \bar h_L, y)$; every block gets gradient only
#   through the last layer.
# * **Deep supervision** (one head per layer): $\mathcal{L} = \sum_{l=1}^{L} \mathrm{CE}(W_l \bar h_l, y)$.
#   Block $l$ receives gradient from its own head *and* from every head above it.
# * **Greedy local learning** (InfoPro, blockwise training): the same sum, but the residual stream
#   is detached between blocks, $h_l = f_l(\mathrm{sg}[h_{l-1}])$, so block $l$ learns only from its
#   own head. InfoPro (Wang et al. 2021; [docs/concepts.md](../docs/concepts.md)) reports that such modules discard task-irrelevant
#   information early ("information collapse").
# * **Pixel ladder** (LocalMIM): a fraction of the patches is hidden; a light decoder $D_l$ on layer
#   $l$ predicts the hidden patches of a coarsened image $C_{s_l}(x)$ (average-pooled by $s_l$, then
#   upsampled, per-patch normalised), $\mathcal{L} = \sum_l \lVert D_l(h_l) - C_{s_l}(x) \rVert^2$ on
#   hidden patches. The factors $s_l$ run geometrically from 1 (the image) to `coarsest` (8): early
#   layers get the fine targets in `fine_to_coarse`, the coarse ones in `coarse_to_fine`.
#
# ### How we measure
#
# Before training and after the last epoch the run embeds a fixed held-out **probe set** at every
# layer and fits closed-form linear probes on a train / test split of it: accuracy for a categorical
# factor (colour, texture, shape, count, ...), $R^2$ for a continuous one (size, position,
# orientation, noise). The label (`linear_acc`) is the large object's shape, probed by logistic
# regression. A factor is *decodable at layer $l$* when its probe score there is high; it *reaches
# the last layer* when it is still high at $l = L$.

# %% tags=["parameters"]
SCALE = "cpu"  # cpu: `shapes` on two CPU cores, minutes | gpu: `shapes` at 64 px on a GPU | gpu-cifar10: CIFAR-10 (no factors)
INTERACTIVE = True  # False in headless runs: no progress bars, no widgets
RUNS_DIR = "../runs"
DATA_DIR = "../data"
SEED = 0  # added to every seed in SEEDS (0: the seeds as listed)
SEEDS = [0, 1, 2]  # every recipe is trained once per seed, the same seeds for every recipe
JOBS = 2  # runs trained at once, each in its own process (the CPU cores are shared between them)
MAX_EPOCHS = 0  # 0: the scale's default
NUM_IMAGES = 0  # shapes only, images generated; 0: the scale's default
WIDTH = 0  # 0: the scale's default (likewise DEPTH, HEADS, BATCH_SIZE)
DEPTH = 0
HEADS = 0
BATCH_SIZE = 0
POOL = "cls"  # the pooled token the figures probe: cls (what every label head reads) or mean (of the patch tokens)
OVERRIDES = {}  # extra dotted overrides for every run, applied last, e.g. {"diagnostics.probe_steps": 20}
SOLUTIONS = False  # True: the exercise solutions train their extra runs too

# %%
import pandas as pd

import workbench as wb
from workbench.analysis import readouts, summaries
from workbench.analysis.experiments import Variant, train_variants
from workbench.analysis.headline import record
from workbench.analysis.notebook import notebook_settings

NOTEBOOK = "01_stepwise_construction"
wb.plots.use_notebook_renderer()  # figures survive export to HTML

# The scale's shared settings (workbench.analysis.notebook.SCALES); a non-zero size above replaces the scale's value.
# The seeds are set per run by train_variants.
common = notebook_settings(NOTEBOOK, SCALE, seed=None, interactive=INTERACTIVE, data_dir=DATA_DIR, overrides=OVERRIDES,
                           sizes={"data.shapes.num_images": NUM_IMAGES, "model.width": WIDTH, "model.depth": DEPTH,
                                  "model.heads": HEADS, "data.batch_size": BATCH_SIZE,
                                  "trainer.max_epochs": MAX_EPOCHS}).overrides
VARIANTS = {
    "end-to-end": Variant("supervised"),
    "deep-supervision": Variant("stepwise-deepsup"),
    "pixel-ladder-fine-to-coarse": Variant("stepwise-pixel-ladder",
                                           {"objectives.ladder.params.direction": "fine_to_coarse"}),
    "pixel-ladder-coarse-to-fine": Variant("stepwise-pixel-ladder",
                                           {"objectives.ladder.params.direction": "coarse_to_fine"}),
    "local-greedy": Variant("local-greedy"),
}
seeds = [SEED + int(s) for s in SEEDS]
pd.Series(common, name="shared by every run").to_frame()

# %% [markdown]
# ## 1 · Train the five recipes
#
# `train_variants` trains each recipe with each seed into
# `<RUNS_DIR>/01_stepwise_construction/<run>-seed<s>` with the shared settings above, `JOBS` runs at
# a time in their own processes. Executing the notebook again with the same parameters reuses the
# finished runs; changing a parameter retrains them. `seeded[label]` is the list of a recipe's runs
# in the order of `seeds`; `runs[label]`, its first seed's run, is what the figures and tables of
# sections 2-5 show, and section 6 reads every seed.

# %%
seeded = train_variants(VARIANTS, notebook=NOTEBOOK, common=common, runs_dir=RUNS_DIR, cache_dir=DATA_DIR,
                        seeds=seeds, jobs=JOBS)
runs = {label: recipe[0] for label, recipe in seeded.items()}
depth = runs["end-to-end"].config.model.depth
pd.DataFrame({run.name: {"wall s": run.summary.get("wall_s"), "epochs": run.summary.get("epochs"),
                         "device": run.summary.get("device")} for recipe in seeded.values() for run in recipe}).T

# %% [markdown]
# ## 2 · Did each recipe train?
#
# First the sanity check: the loss curves of every run (each objective logs its terms separately:
# `ce_l<k>` is the head on layer $k$, `mse_l<k>` the ladder's decoder on layer $k$).
#
# **What to look for.** Every term should fall. Compare the head on the last block in
# `local-greedy` with the same head in `deep-supervision`: with the gradient stopped between
# blocks, a deep block can only refine what the block below hands it. In the pixel ladders, compare
# the coarsest target's term with the finest one's: which one is easier to predict?

# %%
for label, run in runs.items():
    fig = wb.plots.loss_curves(run, smooth=3)
    fig.update_layout(title=f"{label}: loss terms")
    fig.show()

# %% [markdown]
# ## 3 · Where each level of abstraction lives, run by run
#
# One figure per run: the probe score of the label (black) and of every factor (blue: low level,
# green: mid level, red: high level) against depth, after the last epoch, for the `POOL` token.
#
# **How to read it.** Follow each line upwards:
#
# * a line that *rises* is a factor the network builds;
# * a line that *falls* is information the layers discard because their objective does not need
#   it;
# * the right-most point is what reaches the last layer -- the representation a downstream user
#   gets.
#
# Which token is probed matters. The CLS token (`POOL = "cls"`, the default) is what every label
# head reads; the pixel ladders' decoders read the *patch* tokens instead, so for them the mean of
# the patch tokens (`POOL = "mean"`, which also has a layer 0: the patch embedding) is the
# representation their loss shapes. Section 5 shows both. $R^2$ of a continuous factor can be
# negative (worse than predicting the mean); the axis is cut below -0.5, hover for the true value.

# %%
for label, run in runs.items():
    fig = wb.plots.decodability(run, pool=POOL)
    fig.update_layout(title=f"{label}: probe score of the label and every factor by layer ({POOL} pool)")
    fig.show()

# %% [markdown]
# ## 4 · The recipes side by side
#
# The same numbers, one metric at a time, one line per recipe: the label, then the factors the
# question is about -- colour and texture (low level), the large object's shape (mid; it is also
# the label), the number of objects (high).
#
# **What to look for.** Where each recipe's label line starts (block 1) and how much it gains with
# depth; at the last layer (right end), which recipes keep colour, and which make the count
# readable.

# %%
factors = readouts.factor_names(runs["end-to-end"])
focus = [f for f in ("color", "texture", "shape", "count") if f in factors]
for metric in ["linear_acc"] + [f"factor/{f}" for f in focus]:
    wb.plots.metric_by_layer(list(runs.values()), metric=metric, pool=POOL).show()

# %% [markdown]
# **Explore (interactive sessions).** With `INTERACTIVE = True` the layer explorer opens on this
# notebook's runs: pick a run, slide through the layers, colour the probe images by any factor and
# hover a point for its image. Watch the colours of one factor separate into clusters (a factor the
# layer has made readable) or blur together (one it has discarded). The first opening computes a
# 2-D layout per layer, which takes a minute.

# %%
if INTERACTIVE:
    from workbench import widgets

    display(widgets.layer_explorer(f"{RUNS_DIR}/{NOTEBOOK}", pool=POOL))

# %% [markdown]
# ## 5 · The answer in tables
#
# **What reaches the last layer**, for both tokens: the label's linear-probe accuracy and every
# factor's probe score at the last block, one row per recipe.

# %%
def last_layer_table(pool: str) -> pd.DataFrame:
    rows = {}
    for label, run in runs.items():
        row = {"label (linear probe)": readouts.at_last_layer(run, "linear_acc", pool)}
        if factors:
            row.update(readouts.factor_table(run, pool=pool).iloc[-1].to_dict())
        rows[label] = row
    return pd.DataFrame(rows).T


pools = [p for p in ("cls", "mean") if p in set(runs["end-to-end"].diagnostics["pool"])]
for pool in pools:
    display(last_layer_table(pool).style.set_caption(f"last layer, {pool} token").format(precision=3))

# %% [markdown]
# **Where each factor peaks** (`POOL` token): the block with the highest score; a peak below the
# last block means the last blocks lose some of it.

# %%
peaks = pd.DataFrame({label: {f: readouts.peak_layer(run, f"factor/{f}", POOL) for f in factors}
                      for label, run in runs.items()}).T if factors else pd.DataFrame(index=list(runs))
peaks.insert(0, "label (linear probe)", [readouts.peak_layer(run, "linear_acc", POOL) for run in runs.values()])
peaks

# %% [markdown]
# ## 6 · Headline numbers, over the seeds
#
# The numbers the conclusions below rest on, each the mean over the seeds with its 95% interval,
# are written to `<RUNS_DIR>/01_stepwise_construction/headline.json` (the tests read them from
# there) as `<key>/mean`, `/low`, `/high`, `/half_width`, `/sd` and `/n`. For each token `<pool>`
# (`cls`, `mean`):
#
# * `<pool>/label_acc/<run>/block1` and `<pool>/label_acc/<run>/last_layer`: the label's
#   linear-probe accuracy at the first and at the last block;
# * `<pool>/factor/<f>/<run>/last_layer` and `<pool>/peak_layer/<run>/<f>` for colour, texture,
#   shape and count;
#
# and, for the statements below (CLS token, paired by seed):
#
# * `test_acc/<run>/last_head`: the test accuracy of the label head on the last block (runs with
#   label heads); `ladder_mse/<run>/coarsest` and `ladder_mse/<run>/finest`: the pixel ladders'
#   test loss on their coarsest and on their finest target;
# * `difference/block1/<run>`: the run's block-1 label accuracy minus end-to-end's;
#   `difference/gain/end-to-end-local-greedy`: end-to-end's gain after block 1 minus greedy's;
#   `difference/test_acc/<run>`: the run's test accuracy minus end-to-end's;
#   `ratio/ladder_mse/<run>`: the coarsest target's loss over the finest's.

# %%
def per_seed(read, label):
    return [read(run) for run in seeded[label]]


def label_at(run, layer, pool="cls"):
    return readouts.by_layer(run, "linear_acc", pool).loc[layer] if layer == 1 else \
        readouts.by_layer(run, "linear_acc", pool).iloc[-1]


def test_acc(run):
    test = run.summary.get("headline", {})
    for name, objective in run.config.objectives.items():
        if (objective.kind or name) == "supervised":
            return test.get(f"test/{name}/acc", test.get(f"test/{name}/acc_l{depth}"))
    return None


def ladder_mse(run, which):
    test = run.summary.get("headline", {})
    for name, objective in run.config.objectives.items():
        if (objective.kind or name) == "pixel_ladder":
            # fine_to_coarse gives block 1 the finest target, coarse_to_fine the coarsest
            fine_first = objective.params.get("direction", "fine_to_coarse") == "fine_to_coarse"
            first, last = test[f"test/{name}/mse_l1"], test[f"test/{name}/mse_l{depth}"]
            return (first if fine_first else last) if which == "finest" else (last if fine_first else first)
    return None


interval = summaries.t_interval
numbers = {}
for label in seeded:
    for pool in pools:
        numbers[f"{pool}/label_acc/{label}/block1"] = interval(per_seed(lambda r: label_at(r, 1, pool), label))
        numbers[f"{pool}/label_acc/{label}/last_layer"] = interval(per_seed(lambda r: label_at(r, -1, pool), label))
        for f in focus:
            numbers[f"{pool}/factor/{f}/{label}/last_layer"] = interval(
                per_seed(lambda r: readouts.at_last_layer(r, f"factor/{f}", pool), label))
            numbers[f"{pool}/peak_layer/{label}/{f}"] = interval(
                per_seed(lambda r: readouts.peak_layer(r, f"factor/{f}", pool), label))
    if test_acc(runs[label]) is not None:
        numbers[f"test_acc/{label}/last_head"] = interval(per_seed(test_acc, label))
    if ladder_mse(runs[label], "finest") is not None:
        coarsest, finest = per_seed(lambda r: ladder_mse(r, "coarsest"), label), per_seed(lambda r: ladder_mse(r, "finest"), label)
        numbers[f"ladder_mse/{label}/coarsest"] = interval(coarsest)
        numbers[f"ladder_mse/{label}/finest"] = interval(finest)
        numbers[f"ratio/ladder_mse/{label}"] = interval([c / f for c, f in zip(coarsest, finest)])
e2e = "end-to-end"
for label in ("deep-supervision", "local-greedy"):
    numbers[f"difference/block1/{label}"] = interval(
        [a - b for a, b in zip(per_seed(lambda r: label_at(r, 1), label), per_seed(lambda r: label_at(r, 1), e2e))])
    numbers[f"difference/test_acc/{label}"] = interval(
        [a - b for a, b in zip(per_seed(test_acc, label), per_seed(test_acc, e2e))])
gain = {label: [label_at(r, -1) - label_at(r, 1) for r in seeded[label]] for label in (e2e, "local-greedy")}
numbers["difference/gain/end-to-end-local-greedy"] = interval([a - b for a, b in zip(gain[e2e], gain["local-greedy"])])
record(NOTEBOOK, numbers, runs_dir=RUNS_DIR, replace=True, show=False)
pd.DataFrame({key: {"mean, 95% interval over seeds": summaries.format_interval(value)}
              for key, value in numbers.items() if key.startswith(("difference/", "test_acc/", "ratio/"))}).T

# %% [markdown]
# ## 7 · What the evidence says (CPU preset)
#
# At the CPU preset (six blocks of width 64, six epochs on 8,000 `shapes` images; the CLS token),
# `SEEDS = [0, 1, 2]`: each number is the mean over the three seeds with its 95% interval, and a
# comparison between recipes is paired by seed. Your execution prints its own above.
#
# 1. **A label head on every block makes the label readable from the first block.** At block 1
#    the label's probe accuracy is above end-to-end training's (0.55 [0.52, 0.59]) by 0.19
#    [0.12, 0.26] with deep supervision and by 0.26 [0.19, 0.32] with greedy local learning;
#    end-to-end training builds it over the six blocks (to 0.82 [0.79, 0.84]).
# 2. **Greedy local learning stalls after the first block.** With the gradient stopped between
#    blocks, blocks 2-6 add nothing to the label's probe accuracy (0.81 at block 1 and at the last),
#    where end-to-end training adds 0.27: the difference of the gains is 0.27 [0.19, 0.35]. On the
#    test split its last head ends 0.035 [-0.013, 0.083] below end-to-end's (0.849 against 0.884): a
#    deficit on every seed, whose interval still reaches zero. Deep supervision, whose heads'
#    gradients do flow down, ends level with end to end: -0.004 [-0.039, 0.031], a null 0.07 wide.
# 3. **A label discards what it does not need; reconstruction keeps it.** The label-trained recipes
#    end with colour readable at 0.46-0.63 at the last block (intervals reaching at most 0.86); both
#    pixel ladders, which never see a label, end with colour readable at 0.99 [0.97, 1.01].
# 4. **Reconstruction alone does not build the label.** The large object's shape -- the label --
#    stays hard to read in both ladders (0.34 [0.20, 0.47] and 0.44 [0.38, 0.50] at the last block),
#    where every label-trained recipe reaches 0.84 or more (intervals from 0.79).
# 5. **Coarse targets are easier.** In both directions the ladder's test loss on its coarsest
#    target is about two thirds of the loss on its finest one (ratios 0.63 [0.61, 0.66] and 0.66
#    [0.57, 0.74]).
#
# So at this scale **no single recipe brings every level of abstraction to the last layer**:
# label supervision carries the mid-level shape and loses colour, pixel reconstruction keeps
# colour but never builds shape. Combining the two -- the essays' proposal -- is the subject of
# notebook 03 and of exercise 3 below. The tests hold the notebook to statements 1-5: they run it
# with a smaller model and data and the same three seeds (`tests/test_notebook_series.py`) and
# assert statements 3-5 as written and statements 1-2 in their direction on the means over the
# seeds (at that size the gaps are smaller: per seed the block-1 advantage was 0.04-0.15 and
# greedy's test-split deficit 0.02-0.08).
#
# ### Caveats
#
# * **Small data, few steps, three seeds.** Six epochs of a 6-block ViT on 8,000 generated images
#   (8,000 so that fifteen runs fit in under 8 minutes on two cores): the runs are far from
#   converged, and a longer run can change the ranking. The GPU preset (`SCALE = "gpu"`: `shapes`
#   at 64 px, 50,000 images, a 9-block ViT of width 192, 30 epochs) is the scale at which to check
#   a conclusion.
# * **Linear probes measure linear decodability.** A factor that a probe cannot read may still be
#   present non-linearly; a probe on 1,000 images also has a few points of noise.
# * **The pixel ladders never see a label**, so their label accuracy is what reconstruction alone
#   makes linearly readable -- compare them on the factors, not on the label.
#
# ## Exercises
#
# 1. **InfoPro's fix.** Greedy local learning discards information early. Add a pixel ladder to
#    the greedy run (`objectives.ladder.kind=pixel_ladder`, `objectives.ladder.layers=all`,
#    `objectives.ladder.weight=0.5`) and compare its factor decodability with `local-greedy`.
# 2. **Where to supervise.** Put the label head only on layers 2 and 4 and the last
#    (`objectives.deepsup.layers=[2,4,6]`). Which layers does that change?
# 3. **Ladders with a label.** Add the supervised head on the last layer to the coarse-to-fine
#    ladder. Does the last layer keep colour and texture *and* reach end-to-end label accuracy?
# 4. **Counting.** Which recipe makes the number of objects most readable at the last layer, on the
#    CLS token and on the mean patch token? Is the difference larger than what changing `SEED`
#    does?

# %% tags=["solution"]
# Exercise 1: the greedy recipe plus a pixel ladder on every layer.
if SOLUTIONS:
    extra = train_variants(
        {"local-greedy+ladder": Variant("local-greedy", {"objectives.ladder.kind": "pixel_ladder",
                                                         "objectives.ladder.layers": "all",
                                                         "objectives.ladder.weight": 0.5})},
        notebook=NOTEBOOK, common={**common, "seed": seeds[0]}, runs_dir=RUNS_DIR, cache_dir=DATA_DIR)
    display(pd.DataFrame({label: readouts.factor_table(run, pool=POOL).iloc[-1]
                          for label, run in {"local-greedy": runs["local-greedy"], **extra}.items()}).T.round(3))

# %% tags=["solution"]
# Exercise 2: heads on layers 2, 4 and the last one only.
if SOLUTIONS:
    sparse = train_variants(
        {"deep-supervision-2-4-last": Variant("stepwise-deepsup", {"objectives.deepsup.layers": [2, 4, depth]})},
        notebook=NOTEBOOK, common={**common, "seed": seeds[0]}, runs_dir=RUNS_DIR, cache_dir=DATA_DIR)
    wb.plots.metric_by_layer([runs["deep-supervision"], *sparse.values()], metric="linear_acc", pool=POOL).show()

# %% tags=["solution"]
# Exercise 3: the coarse-to-fine ladder plus the label head on the last layer.
if SOLUTIONS:
    both = train_variants(
        {"coarse-to-fine+label": Variant("stepwise-pixel-ladder", {
            "objectives.ladder.params.direction": "coarse_to_fine",
            "objectives.supervised.kind": "supervised", "objectives.supervised.layers": "last"})},
        notebook=NOTEBOOK, common={**common, "seed": seeds[0]}, runs_dir=RUNS_DIR, cache_dir=DATA_DIR)
    compare = {"end-to-end": runs["end-to-end"], "pixel-ladder-coarse-to-fine": runs["pixel-ladder-coarse-to-fine"],
               **both}
    display(pd.DataFrame({label: {"label": readouts.at_last_layer(run, "linear_acc", POOL),
                                  **readouts.factor_table(run, pool=POOL).iloc[-1][focus].to_dict()}
                          for label, run in compare.items()}).T.round(3))

# %% tags=["solution"]
# Exercise 4: the count at the last layer for both tokens; the pixel ladders' patch tokens read it
# best at the CPU preset (about 0.7 against 0.4). Rerun with SEED = 1 before believing the gap.
pd.DataFrame({pool: {label: readouts.at_last_layer(run, "factor/count", pool) for label, run in runs.items()}
              for pool in pools}).round(3)
