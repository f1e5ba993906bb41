"""Plan selection rules on constructed verdicts (no model, no judge)."""

from __future__ import annotations

import pytest

from codeplan.selection import PlanScore, Verdict, score_plan, select_plan, solved_by_plan_count

PASS = Verdict(passed=True, tests_passed=2, tests_total=2, verdict="pass")
HALF = Verdict(passed=False, tests_passed=1, tests_total=2, verdict="wrong_answer")
FAIL = Verdict(passed=False, tests_passed=0, tests_total=2, verdict="runtime_error")


def test_score_plan_counts_programs_and_tests():
    score = score_plan(3, [PASS, HALF, FAIL], logprob=-4.0)
    assert (score.index, score.programs, score.programs_passed, score.tests_passed, score.tests_total) == (3, 3, 1, 3, 6)
    assert score.pass_share == pytest.approx(1 / 3)
    assert score.test_rate == pytest.approx(0.5)


def test_pass_share_rule_prefers_plans_whose_programs_pass():
    scores = [score_plan(0, [HALF, HALF], -1.0), score_plan(1, [PASS, FAIL], -9.0), score_plan(2, [FAIL, FAIL], -0.5)]
    selection = select_plan(scores, "pass-share")
    assert selection.chosen == 1 and selection.rule == "pass-share"
    assert "1/2 programs passed all example tests" in selection.reason


def test_ties_break_by_test_rate_then_likelihood_then_order():
    # Same pass share (0); plan 1 passes more example tests.
    assert select_plan([score_plan(0, [FAIL, FAIL], -1.0), score_plan(1, [HALF, FAIL], -5.0)]).chosen == 1
    # Same share and test rate: the likelier plan wins.
    assert select_plan([score_plan(0, [HALF], -6.0), score_plan(1, [HALF], -2.0)]).chosen == 1
    # Identical on every key: the first sampled plan wins, and the reason says so.
    selection = select_plan([score_plan(0, [PASS], -2.0), score_plan(1, [PASS], -2.0)])
    assert selection.chosen == 0 and "tied" in selection.reason


def test_test_rate_rule_differs_from_pass_share():
    # Plan 0: one full pass, one zero (share 0.5, rate 0.5); plan 1: two halves (share 0, rate 0.5)...
    # make plan 1's rate higher to separate the rules.
    many_halves = Verdict(passed=False, tests_passed=3, tests_total=4)
    scores = [score_plan(0, [PASS, FAIL]), score_plan(1, [many_halves, many_halves])]
    assert select_plan(scores, "pass-share").chosen == 0
    assert select_plan(scores, "test-rate").chosen == 1


def test_likelihood_and_first_rules_and_missing_logprobs():
    scores = [score_plan(0, [PASS], None), score_plan(1, [FAIL], -3.0), score_plan(2, [FAIL], -1.0)]
    assert select_plan(scores, "likelihood").chosen == 2
    assert select_plan(scores, "first").chosen == 0
    # A backend without log-probabilities: likelihood cannot separate, the first plan is taken.
    assert select_plan([PlanScore(0), PlanScore(1)], "likelihood").chosen == 0


def test_problem_without_public_tests_uses_the_fallback_rule():
    scores = [PlanScore(0, logprob=-8.0), PlanScore(1, logprob=-2.0)]
    selection = select_plan(scores, "pass-share", has_public_tests=False, fallback="likelihood")
    assert selection.chosen == 1 and selection.rule == "likelihood"
    assert selection.reason.startswith("no public example tests")
    assert select_plan(scores, "pass-share", has_public_tests=False, fallback="first").chosen == 0


def test_unknown_rule_and_empty_candidates_are_errors():
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_plan([PlanScore(0)], "best")
    with pytest.raises(ValueError):
        select_plan([], "pass-share")


def test_selection_record_round_trips_scores():
    scores = [score_plan(0, [PASS, FAIL], -1.5), score_plan(1, [FAIL], -0.5)]
    record = select_plan(scores).to_record(scores)
    assert record["chosen"] == 0 and record["scores"][0]["pass_share"] == 0.5
    assert PlanScore.from_record(record["scores"][1]) == scores[1]


def test_solved_by_plan_count_grows_with_more_plans():
    # Problem A: only its third plan has a passing program; problem B: its first plan does.
    problem_a = [score_plan(0, [FAIL]), score_plan(1, [HALF]), score_plan(2, [PASS])]
    problem_b = [score_plan(0, [PASS]), score_plan(1, [FAIL]), score_plan(2, [FAIL])]
    assert solved_by_plan_count([problem_a, problem_b]) == [1, 1, 2]
