"""The worked examples in docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_adding_an_objective_runs_as_written():
    from workbench.objectives.registry import OBJECTIVES

    blocks = python_blocks(DOCS / "extending.md")
    assert len(blocks) >= 4
    namespace: dict = {}
    try:
        exec(compile("\n".join(blocks), str(DOCS / "extending.md"), "exec"), namespace)
    finally:
        OBJECTIVES.pop("factor", None)  # the page registers its example at run time
    assert "run" in namespace


def test_every_concept_the_code_cites_is_defined():
    text = (DOCS / "concepts.md").read_text()
    for heading in ("## The research question", "## The `shapes` data", "## Losses", "## Diagnostics"):
        assert heading in text
    for name in ("DINO", "LeJEPA", "VICReg", "Barlow", "NT-Xent", "Patch reconstruction", "Latent prediction",
                 "RankMe", "alpha-ReQ", "Coherence", "split-half ceiling", "CKA", "LiDAR"):
        assert name in text, name
