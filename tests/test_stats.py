"""Bootstrap intervals and paired tests on hand-made verdicts whose answers are known by hand."""

from __future__ import annotations

import pytest

from codeplan.stats import RESAMPLES, bootstrap_interval, mcnemar_exact, paired_bootstrap, problem_values


def test_mcnemar_exact_known_values():
    # 10 discordant problems, 8 vs 2: 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024.
    assert mcnemar_exact(8, 2) == 0.109375
    assert mcnemar_exact(2, 8) == 0.109375
    assert mcnemar_exact(6, 0) == 2 / 64
    assert mcnemar_exact(9, 1) == 2 * 11 / 1024
    # No discordant pair, or an even split: no evidence at all.
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_interval_of_a_constant_is_the_constant():
    assert bootstrap_interval([0.5] * 7) == (0.5, 0.5)
    assert bootstrap_interval([0.0]) == (0.0, 0.0)


def test_interval_of_two_problems_spans_the_outcomes():
    # Resampling {0, 1} gives means 0, 1/2, 1 with chances 1/4, 1/2, 1/4: the 2.5th and 97.5th
    # percentiles are the extremes.
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)


def test_interval_is_reproducible_and_close_to_the_normal_one():
    solved = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap_interval(solved)
    assert (low, high) == bootstrap_interval(solved)  # fixed seed
    # Normal approximation: 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 100) = [0.210, 0.390].
    assert low == pytest.approx(0.210, abs=0.015) and high == pytest.approx(0.390, abs=0.015)
    assert low < 0.3 < high
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_paired_bootstrap_of_identical_arms():
    verdicts = [1.0, 0.0, 0.5, 1.0, 0.25]
    result = paired_bootstrap(verdicts, verdicts)
    assert result == {"difference": 0.0, "interval": [0.0, 0.0], "p_value": 1.0}


def test_paired_bootstrap_when_one_arm_wins_everywhere():
    result = paired_bootstrap([1.0] * 10, [0.0] * 10)
    assert result["difference"] == 1.0 and result["interval"] == [1.0, 1.0]
    # No resampled difference is at or below zero: p = 2 * (0 + 1) / (resamples + 1).
    assert result["p_value"] == 2 / (RESAMPLES + 1)


def test_paired_bootstrap_with_several_samples_per_problem():
    # Per-problem pass@1 (c/n of 4 samples): A gains 0.5 on 8 problems, loses 0.25 on 2, ties on 10.
    a = [0.75] * 8 + [0.25] * 2 + [0.5] * 10
    b = [0.25] * 8 + [0.5] * 2 + [0.5] * 10
    result = paired_bootstrap(a, b)
    assert result["difference"] == pytest.approx((8 * 0.5 - 2 * 0.25) / 20)
    low, high = result["interval"]
    assert 0.0 < low < result["difference"] < high
    assert 0.0 < result["p_value"] < 0.05
    # The other way round: the same evidence, the difference and interval mirrored.
    back = paired_bootstrap(b, a)
    assert back["difference"] == pytest.approx(-result["difference"])
    assert back["p_value"] == pytest.approx(result["p_value"], abs=0.01)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_problem_values_from_a_results_record():
    record = {"n": 4, "c": 1, "samples": [
        {"passed": True, "tests_passed": 3, "tests_total": 3},
        {"passed": False, "tests_passed": 1, "tests_total": 3},
        {"passed": False, "tests_passed": 0, "tests_total": 3},
        {"passed": False, "tests_passed": 2, "tests_total": 3}]}
    values = problem_values(record, [1, 2])
    assert values["pass@1"] == 0.25 and values["strict_accuracy"] == 0.25
    assert values["pass@2"] == pytest.approx(1 - 3 / 6)  # 1 - C(3,2) / C(4,2)
    assert values["test_case_average"] == pytest.approx((1 + 1 / 3 + 0 + 2 / 3) / 4)
    # Without the per-sample records the test-case average is unknown, not zero.
    assert "test_case_average" not in problem_values({"n": 2, "c": 1, "samples": []}, [1])
