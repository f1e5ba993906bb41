"""Plan selection: score each candidate plan on the public example tests, then choose one by a rule.

Pure functions over verdicts (objects with passed / tests_passed / tests_total): generate, serve and
report all read plan scores through these types, and the rule a run used is recorded with its scores
so a reader can check every choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

SelectionRule = Literal["pass-share", "test-rate", "likelihood", "first"]
FallbackRule = Literal["likelihood", "first"]



@dataclass(frozen=True)
class Verdict:
    """What plan selection needs from one judged program (a judge ProgramResult has these fields)."""

    passed: bool
    tests_passed: int
    tests_total: int
    verdict: str = ""


@dataclass(frozen=True)
class PlanScore:
    """One candidate plan's record on the public example tests."""

    index: int
    programs: int = 0  # programs judged
    programs_passed: int = 0  # programs passing every example test
    tests_passed: int = 0
    tests_total: int = 0
    logprob: float | None = None  # summed log-probability of the plan text, where the backend gives it
    tokens: int | None = None  # tokens of the plan text (what the likelihood is normalised by), where known

    @property
    def pass_share(self) -> float:
        return self.programs_passed / self.programs if self.programs else 0.0

    @property
    def mean_logprob(self) -> float | None:
        """Log-probability per token: a plan's likelihood that does not favour short plans."""
        if self.logprob is None or not math.isfinite(self.logprob):
            return None
        return self.logprob / self.tokens if self.tokens else self.logprob

    @property
    def test_rate(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else 0.0

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "pass_share": round(self.pass_share, 6), "test_rate": round(self.test_rate, 6)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "PlanScore":
        return cls(**{key: record[key] for key in cls.__dataclass_fields__ if key in record})


def score_plan(index: int, results: Sequence[Any], logprob: float | None = None, tokens: int | None = None) -> PlanScore:
    """Score a plan from the verdicts of its programs (objects with passed/tests_passed/tests_total).
    The verdicts must come from running every public test (no early exit), so that tests_passed
    counts passes, not the prefix before the first failure."""
    return PlanScore(index=index, programs=len(results), programs_passed=sum(bool(r.passed) for r in results),
                     tests_passed=sum(int(r.tests_passed) for r in results),
                     tests_total=sum(int(r.tests_total) for r in results), logprob=logprob, tokens=tokens)


def _likelihood(score: PlanScore) -> float:
    mean = score.mean_logprob
    return mean if mean is not None else -math.inf


# Each rule is a sort key; the highest key wins and ties go to the earliest plan.
RULE_KEYS: dict[str, Any] = {
    "pass-share": lambda s: (s.pass_share, s.test_rate, _likelihood(s)),
    "test-rate": lambda s: (s.test_rate, s.pass_share, _likelihood(s)),
    "likelihood": lambda s: (_likelihood(s),),
    "first": lambda s: (0,),
}


@dataclass(frozen=True)
class Selection:
    chosen: int  # index of the chosen plan
    rule: str  # the rule actually applied (the fallback when there were no example tests)
    reason: str  # one line a reader can check against the scores

    def to_record(self, scores: Sequence[PlanScore]) -> dict[str, Any]:
        return {"chosen": self.chosen, "rule": self.rule, "reason": self.reason,
                "scores": [score.to_record() for score in scores]}


def select_plan(scores: Sequence[PlanScore], rule: str = "pass-share", *, has_public_tests: bool = True,
                fallback: str = "likelihood") -> Selection:
    """Choose one plan. Without example tests, every plan scores zero, so `fallback` decides."""
    if not scores:
        raise ValueError("no candidate plans to choose from")
    applied = rule if has_public_tests else fallback
    if applied not in RULE_KEYS:
        raise ValueError(f"unknown selection rule '{applied}' (known: {', '.join(RULE_KEYS)})")
    key = RULE_KEYS[applied]
    best = max(scores, key=lambda s: (key(s), -s.index))
    return Selection(chosen=best.index, rule=applied, reason=_reason(best, scores, applied, has_public_tests))


def _reason(best: PlanScore, scores: Sequence[PlanScore], rule: str, has_public_tests: bool) -> str:
    prefix = "" if has_public_tests else "no public example tests; "
    if rule == "first":
        return f"{prefix}rule 'first': plan 0 taken without scoring"
    lp = "n/a" if best.mean_logprob is None else f"{best.mean_logprob:.3f} per token"
    if rule == "likelihood":
        return f"{prefix}highest plan log-probability ({lp}) of {len(scores)} plans"
    ties = sum(1 for s in scores if RULE_KEYS[rule](s) == RULE_KEYS[rule](best))
    tie_note = f"; {ties} plans tied on every key, the first was taken" if ties > 1 else ""
    return (f"{prefix}{best.programs_passed}/{best.programs} programs passed all example tests, "
            f"{best.tests_passed}/{best.tests_total} example tests passed, log-probability {lp} "
            f"(rule '{rule}', best of {len(scores)} plans{tie_note})")


def solved_by_plan_count(selections: Sequence[Sequence[PlanScore]], rule: str = "pass-share") -> list[int]:
    """For k = 1..K: problems whose chosen plan among the first k sampled plans has at least one
    program passing all example tests (the paper's Fig. 5 view, on public tests)."""
    width = max((len(s) for s in selections), default=0)
    counts = []
    for k in range(1, width + 1):
        solved = 0
        for scores in selections:
            head = list(scores[:k])
            if not head:
                continue
            chosen = select_plan(head, rule).chosen
            if next(s for s in head if s.index == chosen).programs_passed > 0:
                solved += 1
        counts.append(solved)
    return counts


def rank_programs(verdicts: Sequence[Any]) -> list[int]:
    """Indices of judged programs, best on the public tests first: passing every test, then the
    share of tests passed; ties stay in sampling order (no likelihood: programs compete on tests)."""
    def key(i: int) -> tuple[float, float, int]:
        v = verdicts[i]
        return (-float(bool(v.passed)), -(v.tests_passed / v.tests_total if v.tests_total else 0.0), i)

    return sorted(range(len(verdicts)), key=key)
