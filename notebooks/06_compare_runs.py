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
# # 06 · Comparing runs: presets, seeds, and how sure we are
#
# **The question.** Every other notebook of the series compares recipes with *one* run each. A run
# is one draw: another seed changes the initial weights, the order of the batches and every random
# crop and mask, and the final accuracy moves with it. Before saying "recipe A beats recipe B" we
# need to know how far a recipe moves from seed to seed. This notebook runs a **sweep** -- every
# preset in `PRESETS` trained with every seed in `SEEDS`, each run in its own process -- and reads
# it as a table of mean ± standard deviation over seeds, and as figures with seed bands.
#
# ### What is compared
#
# For each run, after its last epoch:
#
# * `val_acc`: the validation accuracy of its label head (presets with a supervised objective only);
# * `linear_acc`: the accuracy of a logistic-regression probe for the label on the last layer's
#   embedding of the held-out probe set -- the number that compares a self-supervised preset with a
#   supervised one;
# * `knn_acc` (a k-nearest-neighbour probe, no training at all) and `rankme` (notebook 02).
#
# Over the $n$ seeds of a preset we report the mean $\bar a = \frac1n \sum_s a_s$ and the sample
# standard deviation $\hat\sigma = \sqrt{\frac{1}{n-1} \sum_s (a_s - \bar a)^2}$. **How to read
# them:** a difference between two presets smaller than about $2\hat\sigma$ is not evidence of
# anything at three seeds; with $n = 3$, $\hat\sigma$ is itself a rough estimate (it can be off by a
# factor of two).

# %% tags=["parameters"]
SCALE = "cpu"  # cpu: `shapes` on two CPU cores, a few minutes | gpu: CIFAR-10 scale, one GPU
INTERACTIVE = True  # False in headless runs
RUNS_DIR = "../runs"
DATA_DIR = "../data"
SEED = 0  # added to every seed in SEEDS (0: the seeds as listed)
PRESETS = ["supervised", "stepwise-deepsup", "lejepa"]  # or one string "supervised,lejepa"
SEEDS = [0, 1, 2]  # or a string: "0,1,2", "0-4"
JOBS = 2  # runs trained at once; each gets cpu_count // JOBS threads
MAX_EPOCHS = 0  # 0: the scale's default (likewise every size below)
NUM_IMAGES = 0  # shapes only: images generated
WIDTH = 0
DEPTH = 0
OVERRIDES = {}  # extra dotted overrides for every run, applied last, e.g. {"optim.lr": 1e-3}
SWEEP_NAME = ""  # empty: named after the settings, so new settings never reuse old runs
POOL = "cls"  # the pooled token the probes read: cls (what every preset's objective trains) or mean
SOLUTIONS = False  # True: the exercise solutions train their extra runs too

# %%
import hashlib
import json
from pathlib import Path

import pandas as pd

import workbench as wb
from workbench.analysis import summaries
from workbench.analysis.headline import notebook_dir, record
from workbench.analysis.notebook import notebook_settings
from workbench.training.sweep import load_sweep, parse_seeds, slurm_script, sweep

NOTEBOOK = "06_compare_runs"
wb.plots.use_notebook_renderer()  # figures survive export to HTML

# The scale's settings (workbench.analysis.notebook.SCALES); a non-zero size above replaces the
# scale's value. The sweep sets each run's seed.
settings = notebook_settings(NOTEBOOK, SCALE, seed=None, interactive=None, data_dir=DATA_DIR, overrides=OVERRIDES,
                             sizes={"data.shapes.num_images": NUM_IMAGES, "model.width": WIDTH, "model.depth": DEPTH,
                                    "trainer.max_epochs": MAX_EPOCHS}).overrides
# the sweep passes overrides on its jobs' command lines, as key=value with the value in YAML (JSON is YAML)
overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
presets = [p.strip() for p in PRESETS.split(",")] if isinstance(PRESETS, str) else list(PRESETS)
seeds = [SEED + s for s in parse_seeds(SEEDS)]
# The sweep keeps a completed run it finds in its directory, so the directory is named after the
# settings that define a run: new settings get a new directory, more seeds or presets reuse the old runs.
name = SWEEP_NAME or f"{SCALE}-" + hashlib.sha1(json.dumps(overrides).encode()).hexdigest()[:8]
root = notebook_dir(NOTEBOOK, RUNS_DIR).resolve()
print(f"{len(presets)} presets x {len(seeds)} seeds = {len(presets) * len(seeds)} runs into {root / name}")
pd.Series(overrides, name="every run").to_frame()

# %% [markdown]
# ## 1 · Run the sweep
#
# `workbench.training.sweep.sweep` starts one `python -m workbench fit` process per (preset, seed), at most
# `JOBS` at a time, and returns the completed runs. Each run lands in
# `<RUNS_DIR>/06_compare_runs/<sweep>/<preset>-seed<seed>/` (the usual run directory), its log in
# `logs/`, and `sweep.json` lists every job with its exact command line -- what you need to rerun
# one of them by hand. The same sweep from a shell:
#
# ```bash
# python -m workbench sweep --preset supervised --preset lejepa --seeds 0,1,2 --jobs 2 \
#     --set data.shapes.num_images=6000 --runs-dir runs/06_compare_runs --name my-sweep
# ```
#
# Why a process per run: a crash or a NaN ends one run, not the sweep, and no state (a cache, a
# random generator) leaks from one run into the next.

# %%
sweep_dir = root / name
# every job caches the generated data in DATA_DIR, as the other notebooks' runs do
runs = sweep(presets, seeds, overrides, jobs=JOBS, runs_dir=root, name=name, data_dir=Path(DATA_DIR).resolve())
runs = load_sweep(sweep_dir)  # the same runs, read back from the directory alone
print(f"{len(runs)} runs: " + ", ".join(run.name for run in runs))

# %% [markdown]
# ## 2 · The table: mean ± std over seeds
#
# One row per run first (`summaries.seed_table`), then one row per *experiment*
# (`summaries.mean_std`): the runs whose configs are equal but for the seed. Here every preset runs
# with the same overrides, so an experiment is a preset; two runs of one preset with other settings
# would never be averaged together -- each gets its own row, labelled with the fields that differ.
# `-` marks a number a preset does not have (a self-supervised run has no label head, hence no
# `val_acc`).

# %%
per_run = summaries.seed_table(runs, pool=POOL)
per_run.round(3)

# %%
stats = summaries.mean_std(per_run)
summaries.mean_pm_std(stats)

# %% [markdown]
# The tidy diagnostics of the whole sweep in one table -- every (run, epoch, layer, pool, metric)
# -- is `wb.compare_runs(runs)`; any question the table above does not answer is a `groupby` away
# from it. For example the label probe at every layer, per preset, averaged over seeds:

# %%
tidy = wb.compare_runs(runs)
tidy = tidy.merge(per_run[["run", "preset", "seed"]], on="run")
last_epoch = tidy.groupby("run")["epoch"].transform("max")
(tidy[(tidy.metric == "linear_acc") & (tidy.pool == POOL) & (tidy.epoch == last_epoch)]
 .groupby(["preset", "layer"])["value"].agg(["mean", "std"]).unstack("layer").round(3))

# %% [markdown]
# ## 3 · The figures: seed bands
#
# Both figures draw every preset as the mean over its seeds with a ± one standard deviation band
# (runs that differ only by their seed are grouped automatically).
#
# **The probe by layer.** Where two bands overlap, the data cannot tell the presets apart at that
# layer. **What to look for:** the width of each band -- how much a single run could have misled
# you -- and where along the depth the presets separate.

# %%
wb.plots.metric_by_layer(runs, metric="linear_acc", pool=POOL)

# %% [markdown]
# **The training-batch RankMe over training** (`train/monitor/rankme`, every preset logs it): the
# seeds of a healthy preset agree closely; a wide band means some seeds collapsed or diverged.

# %%
wb.plots.compare_runs(runs, metric="train/monitor/rankme")

# %% [markdown]
# ## 4 · Headline numbers
#
# Written to `<RUNS_DIR>/06_compare_runs/headline.json`, for every preset `p`:
#
# * `linear_acc/<p>/mean`, `linear_acc/<p>/std`: the label probe at the last layer over seeds;
# * `val_acc/<p>/mean`, `val_acc/<p>/std`: the validation accuracy (presets with a label head);
# * `seeds/<p>`: how many seeds completed;
# * `gap_to_best/<p>/in_std`: how far preset `p`'s mean probe is below the best preset's, in units
#   of the larger of their two standard deviations (above 2: a difference the seeds support; the
#   best preset has no entry).

# %%
numbers = {}
for preset, row in stats.iterrows():
    numbers[f"linear_acc/{preset}/mean"] = row["linear_acc/mean"]
    numbers[f"linear_acc/{preset}/std"] = row["linear_acc/std"]
    if pd.notna(row["val_acc/mean"]):
        numbers[f"val_acc/{preset}/mean"] = row["val_acc/mean"]
        numbers[f"val_acc/{preset}/std"] = row["val_acc/std"]
    numbers[f"seeds/{preset}"] = row["n"]
best = stats["linear_acc/mean"].idxmax()
for preset, row in stats.iterrows():
    spread = pd.Series([row["linear_acc/std"], stats.loc[best, "linear_acc/std"]]).max()  # NaN-skipping
    if preset != best and spread > 0:  # NaN (single seeds) compares False: no gap without a spread
        numbers[f"gap_to_best/{preset}/in_std"] = (stats.loc[best, "linear_acc/mean"] - row["linear_acc/mean"]) / spread
record(NOTEBOOK, numbers, runs_dir=RUNS_DIR, replace=True);

# %% [markdown]
# ## 5 · What the evidence says (CPU preset)
#
# Measured at the CPU preset (three seeds; the label probe reads the CLS token of the last layer;
# chance 0.25):
#
# | preset | `val_acc` | `linear_acc` | seed 0 / 1 / 2 (`linear_acc`) |
# |---|---|---|---|
# | `supervised` | 0.716 ± 0.005 | 0.675 ± 0.014 | 0.667 / 0.691 / 0.667 |
# | `stepwise-deepsup` | 0.719 ± 0.020 | 0.677 ± 0.025 | 0.691 / 0.648 / 0.691 |
# | `lejepa` | -- | 0.335 ± 0.004 | 0.340 / 0.333 / 0.333 |
#
# 1. **End-to-end and deep supervision cannot be told apart.** Their mean probes differ by 0.002,
#    a tenth of a standard deviation (`gap_to_best/supervised/in_std` about 0.1). Yet any single
#    pair of runs tells a story: with seed 1 alone, end-to-end "wins" by four points; with seed 0
#    alone, deep supervision wins by two and a half.
# 2. **LeJEPA's probe is far below both, and every seed agrees**: 0.34 ± 0.004, about 14
#    standard deviations below the best preset -- three epochs of a self-supervised loss do not
#    make the large object's shape linearly readable (notebook 03 reads the other factors).
#
# Both statements are checked by `tests/test_notebook_series.py` on every run of this notebook (with
# two seeds at smaller sizes, where a standard deviation over two runs is too noisy to test: the two
# supervised presets' mean probes within 0.1 of each other, LeJEPA's more than 0.1 below the best). The mean-pooled patch tokens (`POOL = "mean"`) tell the same
# story with lower numbers (0.46, 0.43 and 0.34): the label heads read the CLS token, so that is
# where the label is best decoded.
#
# ## 6 · Driving the sweep from outside the notebook
#
# **With papermill.** The parameters cell makes the notebook itself a sweep script: papermill
# executes a copy with new values and keeps the executed copy (figures, tables and all) as the
# record of what ran. Lists go through `-y` (a YAML string; `-p` passes numbers and strings):
#
# ```bash
# papermill notebooks/06_compare_runs.ipynb runs/notebooks/06_dino_vs_lejepa.ipynb --cwd notebooks \
#     -p INTERACTIVE False -y "{PRESETS: [dino, lejepa], SEEDS: [0, 1, 2, 3, 4]}" -p MAX_EPOCHS 10
# ```
#
# One executed notebook per question (`-p SCALE gpu`, other presets, more seeds) is a lab notebook
# that reruns exactly.
#
# **On a cluster.** The sweep's jobs are plain command lines, so a SLURM job array runs the same
# sweep with one run per array task: `python -m workbench sweep ... --print-slurm` (or
# `slurm_script(...)`, below) writes the script; task `i` runs `python -m workbench sweep ... --only
# i`, and every task writes into the same sweep directory. When they are done, point this notebook
# at that directory (`SWEEP_NAME` and `RUNS_DIR`) and it reuses the completed runs. The README's
# section on sweeps has the details.

# %%
print(slurm_script(presets, seeds, overrides, runs_dir=root, name=name))

# %% [markdown]
# ### Caveats
#
# * **Three seeds** give a rough spread: the standard deviation of three draws can be half or
#   twice the true one. Five to ten seeds are needed for a difference of the size of the spread.
# * **The seed is not the only source of variation**: the data split is fixed (`data.seed`), so
#   these bands say nothing about how the numbers move with other data.
# * **Small runs**: the CPU scale trains three epochs on 6,000 images; a ranking at this budget need
#   not survive a longer run (try the GPU scale).
#
# ## Exercises
#
# 1. **How many seeds?** Rerun with `SEEDS = "0-5"`. The three old runs per preset are reused. Does
#    the standard deviation change much? Does the ranking?
# 2. **A sweep over a setting, not a preset.** Use `OVERRIDES = {"model.depth": 2}` and then
#    `{"model.depth": 6}` (two sweeps, two directories) and compare the tables.
# 3. **Which layer?** From `tidy` (section 2), find for each preset the layer with the best mean
#    probe, and whether it is better than the last layer by more than its standard deviation.
# 4. **The seed's share.** For one preset, compare the spread over seeds with the spread over
#    *data* seeds: `OVERRIDES = {"data.seed": 1}` changes the split.

# %% tags=["solution"]
# Exercise 1: three more seeds; the completed runs of the first three are kept, not retrained.
if SOLUTIONS:
    more = sweep(presets, [SEED + s for s in range(6)], overrides, jobs=JOBS, runs_dir=root, name=name,
                 data_dir=Path(DATA_DIR).resolve())
    print(summaries.mean_pm_std(summaries.mean_std(summaries.seed_table(more, pool=POOL))))

# %% tags=["solution"]
# Exercise 3: the best layer per preset, against the last one.
last_epoch_rows = tidy[(tidy.metric == "linear_acc") & (tidy.pool == POOL) & (tidy.epoch == last_epoch)]
by_layer = last_epoch_rows.groupby(["preset", "layer"])["value"].agg(["mean", "std"]).reset_index()
for preset, group in by_layer.groupby("preset", sort=False):
    best_row = group.loc[group["mean"].idxmax()]
    last_row = group.loc[group["layer"].idxmax()]
    print(f"{preset}: best layer {int(best_row.layer)} ({best_row['mean']:.3f} ± {best_row['std']:.3f}), "
          f"last layer {int(last_row.layer)} ({last_row['mean']:.3f} ± {last_row['std']:.3f})")
