"""Training: from a validated :class:`~workbench.config.RunConfig` to a finished run directory.

- :mod:`.fit` -- :func:`~workbench.training.fit.fit` (``wb.fit``): resolve the config, create or
  resume the run directory, start Lightning, write the summary;
- :mod:`.module` -- :class:`~workbench.training.module.WorkbenchModule`, the LightningModule: views,
  one backbone forward per view, the objectives, the losses and their logging;
- :mod:`.optim` -- AdamW with warm-up and cosine decay;
- :mod:`.checkpointing`, :mod:`.csv_logger` -- ``last.ckpt`` and ``metrics.csv``, both written atomically;
- :mod:`.diagnostics_callback` -- the per-layer diagnostics on the probe set during training;
- :mod:`.sweep` -- presets x seeds, one process per run.

May import the core (config, data, models, views, objectives, losses, diagnostics, runs); nothing
below it imports this package. The package itself imports nothing, so importing one of its
modules never drags in Lightning's trainer.
"""
