import math

import pytest

from workbench.schedules import warmup_cosine


def test_warmup_is_linear_and_reaches_start_at_the_end_of_warmup():
    assert warmup_cosine(0, total=100, warmup=10) == pytest.approx(0.1)
    assert warmup_cosine(4, total=100, warmup=10) == pytest.approx(0.5)
    assert warmup_cosine(10, total=100, warmup=10) == pytest.approx(1.0)


def test_cosine_hits_its_midpoint_and_end():
    # halfway through the cosine part: cos(pi / 2) = 0, so the value is the mean of start and end
    assert warmup_cosine(55, total=100, warmup=10, start=1.0, end=0.2) == pytest.approx(0.6)
    assert warmup_cosine(100, total=100, warmup=10, start=1.0, end=0.2) == pytest.approx(0.2)
    assert warmup_cosine(500, total=100, warmup=10, end=0.2) == pytest.approx(0.2)
    # a quarter of the way: 0.5 * (1 + cos(pi/4))
    assert warmup_cosine(25, total=100, warmup=0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
