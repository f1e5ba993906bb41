"""pass@k against brute force, numerical stability, edge rules; aggregation per difficulty."""

from __future__ import annotations

import itertools
import math

import pytest

from codeplan.metrics import SampleScore, aggregate, aggregate_by_difficulty, pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c correct) that contain a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_matches_enumeration_for_small_n(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_stable_for_large_n():
    value = pass_at_k(1000, 1, 1)
    assert value == pytest.approx(1e-3, rel=1e-12)
    value = pass_at_k(1000, 3, 100)
    exact = 1 - math.comb(997, 100) / math.comb(1000, 100)
    assert value == pytest.approx(exact, rel=1e-12)
    assert 0.0 <= pass_at_k(1000, 500, 10) <= 1.0
    assert pass_at_k(1000, 999, 2) == 1.0


def test_no_correct_sample_is_zero():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 0, 50) == 0.0


def test_k_above_n_uses_all_samples():
    assert pass_at_k(3, 1, 10) == 1.0
    assert pass_at_k(3, 0, 10) == 0.0
    assert pass_at_k(5, 2, 5) == 1.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 0)


def test_aggregate_and_per_difficulty():
    per_problem = {
        "a": [SampleScore(True, 3, 3), SampleScore(False, 1, 3)],
        "b": [SampleScore(False, 0, 2), SampleScore(False, 1, 2)],
    }
    overall = aggregate(per_problem, [1, 2])
    assert overall["pass_at_k"]["1"] == pytest.approx(0.25)
    assert overall["pass_at_k"]["2"] == pytest.approx(0.5)
    assert overall["strict_accuracy"] == pytest.approx(0.25)
    assert overall["test_case_average"] == pytest.approx(((1 + 1 / 3) / 2 + (0 + 0.5) / 2) / 2)
    split = aggregate_by_difficulty(per_problem, {"a": "introductory", "b": None}, [1])
    assert split["introductory"]["pass_at_k"]["1"] == pytest.approx(0.5)
    assert split["unknown"]["strict_accuracy"] == 0.0
