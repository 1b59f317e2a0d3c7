"""Reading finished runs: what the notebooks and the figures ask of run directories.

- :mod:`.analyze` -- ``wb.analyze``: the diagnostics of any ViT (timm, a workbench run, any module
  through an adapter) written as a run directory;
- :mod:`.notebook` -- the notebooks' scales and the settings their runs share;
- :mod:`.readouts` -- numbers out of one run (a metric at the last layer, the best layer, ...);
- :mod:`.summaries` -- several runs: seeds grouped by experiment, means with t-intervals, paired differences;
- :mod:`.experiments` -- train named variants side by side from a notebook;
- :mod:`.curricula` -- how scheduled and adaptive hyper-parameters moved;
- :mod:`.layouts` -- aligned 2-D UMAP layouts of the probe set per layer and epoch;
- :mod:`.headline` -- a notebook's headline numbers (``headline.json``);
- :mod:`.teach` -- student copies of the notebooks.

May import the core, :mod:`workbench.runs` and (to train) :mod:`workbench.training`; figures and
widgets import this package, never the other way round.
"""
