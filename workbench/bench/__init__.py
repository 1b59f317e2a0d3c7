"""Measurements on this machine (``python -m workbench bench``), kept out of the test suite.

- :mod:`.suite` -- the table: step time against a plain loop, batched views against per-sample
  transforms, the diagnostics' share of a run, layouts, data generation;
- :mod:`.step` -- the plain PyTorch loop the training step is compared with;
- :mod:`.views` -- torchvision's per-sample transforms, the views' baseline;
- :mod:`.memory` -- peak memory of one diagnostics pass;
- :mod:`.controls` -- the positive controls on ``shapes`` over seeds (``bench --controls``).

May import anything in the workbench; nothing imports it but the CLI.
"""
