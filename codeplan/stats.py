"""Uncertainty of the report's averages and paired tests between two arms on the same problems.

Roles:
- `problem_values`: one problem's metric values from its results.json record (pass@k from n and c,
  strict accuracy = c / n, test-case average from the per-sample counts); these are the numbers
  `codeplan.metrics.aggregate` averages, so the mean of them over a run's problems is its figure.
- `bootstrap_interval`: percentile bootstrap interval of the mean over problems.
- `mcnemar_exact`: exact McNemar test (two-sided binomial on the discordant pairs).
- `paired_bootstrap`: the mean difference of two arms over problems both have, its percentile
  interval and a two-sided p-value, resampling problems (works with any number of samples each).

Invariants: every bootstrap draws from `numpy.random.default_rng(seed)` with the defaults below
(SEED, RESAMPLES), so a report rebuilt from the same results.json files has the same numbers.
Resampling is over problems (the unit that varies); a problem's samples stay together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from codeplan.metrics import SampleScore, pass_at_k, problem_metrics

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
_CHUNK = 1_000  # resamples drawn at a time: bounds memory at CHUNK x problems indices


def problem_values(record: Mapping[str, Any], ks: Sequence[int]) -> dict[str, float]:
    """{"pass@k": ..., "strict_accuracy": ..., "test_case_average": ...} of one results.json problem
    record ({"n", "c", "samples": [...]}); test_case_average only when its n samples are listed."""
    n, c = int(record["n"]), int(record["c"])
    values = {f"pass@{k}": pass_at_k(n, c, k) for k in ks}
    values["strict_accuracy"] = c / n
    samples = record.get("samples") or []
    if len(samples) == n:
        scores = [SampleScore(bool(s["passed"]), int(s.get("tests_passed", 0)), int(s.get("tests_total", 0)))
                  for s in samples]
        values["test_case_average"] = problem_metrics(scores, [])["test_case_average"]
    return values


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` bootstrap samples of `values` (rows = problems; columns kept together)."""
    rng = np.random.default_rng(seed)
    count = len(values)
    means = []
    for start in range(0, resamples, _CHUNK):
        index = rng.integers(0, count, size=(min(_CHUNK, resamples - start), count))
        means.append(values[index].mean(axis=1))
    return np.concatenate(means)


def bootstrap_interval(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one value per problem)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or len(data) == 0:
        raise ValueError("bootstrap_interval needs a non-empty list of numbers")
    means = _resampled_means(data, resamples, seed)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: problems solved by A only (`only_a`) and by B only (`only_b`).

    Under "no difference" each discordant problem is A's with probability 1/2, so the p-value is
    twice the smaller binomial tail, capped at 1 (1.0 when there is no discordant pair).
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"mcnemar_exact needs counts >= 0 (got {only_a}, {only_b})")
    discordant = only_a + only_b
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                     level: float = LEVEL) -> dict[str, Any]:
    """Mean of a - b over paired problems, its percentile interval and a two-sided p-value.

    p = 2 x the smaller share of resampled differences at or below zero / at or above zero,
    each share counted as (count + 1) / (resamples + 1) so a finite bootstrap never claims p = 0;
    capped at 1. Equal arms give 1.0.
    """
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape or first.ndim != 1 or len(first) == 0:
        raise ValueError("paired_bootstrap needs two non-empty lists of the same length")
    differences = first - second
    means = _resampled_means(differences, resamples, seed)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    at_or_below, at_or_above = int((means <= 0).sum()), int((means >= 0).sum())
    p_value = min(1.0, 2 * (min(at_or_below, at_or_above) + 1) / (resamples + 1))
    return {"difference": float(differences.mean()), "interval": [float(low), float(high)], "p_value": p_value}
