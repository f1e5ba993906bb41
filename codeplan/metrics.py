"""Evaluation metrics: unbiased pass@k, APPS strict accuracy and test-case average, per difficulty.

Definitions used everywhere in the project (docs/judge.md repeats them):
- pass@k (Chen et al. 2021): for a problem with n samples of which c pass all tests,
  1 - C(n-c, k) / C(n, k), averaged over problems. Computed as a product of ratios so it never
  builds huge binomials. When k > n the estimator is undefined; we use the rule "the n samples are
  all there is": 1.0 if c > 0 else 0.0 (equal to the estimator's value at k = n).
- strict accuracy: the share of a problem's samples that pass every test, averaged over problems
  (with one sample per problem this is APPS's strict accuracy; in general it equals pass@1).
- test-case average: the share of a sample's tests it passes, averaged over a problem's samples,
  then over problems (APPS's "test case average" for one sample per problem).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: n samples, c of them correct.

    Stable form: C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i), a product of numbers in [0, 1].
    k > n is answered as if k == n (1.0 if any sample passed, else 0.0); see the module docstring.
    """
    if n < 0 or c < 0 or k < 1:
        raise ValueError(f"pass_at_k needs n >= 0, c >= 0, k >= 1 (got n={n}, c={c}, k={k})")
    if c > n:
        raise ValueError(f"pass_at_k: c={c} correct samples out of n={n}")
    if c == 0:
        return 0.0
    if k > n:
        return 1.0
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


@dataclass(frozen=True)
class SampleScore:
    """What the metrics need from one judged sample."""

    passed: bool
    tests_passed: int
    tests_total: int


def problem_metrics(samples: Sequence[SampleScore], ks: Iterable[int]) -> dict[str, float]:
    """pass@k, strict accuracy and test-case average of one problem's samples."""
    n = len(samples)
    c = sum(1 for sample in samples if sample.passed)
    out = {f"pass@{k}": pass_at_k(n, c, k) if n else 0.0 for k in ks}
    out["strict_accuracy"] = c / n if n else 0.0
    out["test_case_average"] = (
        sum(s.tests_passed / s.tests_total if s.tests_total else float(s.passed) for s in samples) / n if n else 0.0
    )
    return out


def aggregate(per_problem: Mapping[str, Sequence[SampleScore]], ks: Sequence[int]) -> dict:
    """Averages over problems: {"pass_at_k": {"1": ...}, "strict_accuracy", "test_case_average", "num_problems"}."""
    ks = list(ks)
    rows = [problem_metrics(samples, ks) for samples in per_problem.values()]
    count = len(rows)

    def mean(key: str) -> float:
        return sum(row[key] for row in rows) / count if count else 0.0

    return {
        "pass_at_k": {str(k): mean(f"pass@{k}") for k in ks},
        "strict_accuracy": mean("strict_accuracy"),
        "test_case_average": mean("test_case_average"),
        "num_problems": count,
    }


def aggregate_by_difficulty(
    per_problem: Mapping[str, Sequence[SampleScore]], difficulty: Mapping[str, str | None], ks: Sequence[int]
) -> dict[str, dict]:
    """`aggregate` for each difficulty present (problems without one are grouped under "unknown")."""
    groups: dict[str, dict[str, Sequence[SampleScore]]] = {}
    for problem_id, samples in per_problem.items():
        groups.setdefault(difficulty.get(problem_id) or "unknown", {})[problem_id] = samples
    return {name: aggregate(group, ks) for name, group in sorted(groups.items())}
