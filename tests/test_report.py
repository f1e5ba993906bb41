"""`codeplan report` on constructed results.json files (and the samples beside them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.errors import InputError
from codeplan.report import write_report
from codeplan.report.tables import relative_change


def _results(folder: Path, p1: float, p5: float, strict: float, intro: float, interview: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "pass_at_k": {"1": p1, "5": p5},
        "per_difficulty": {"interview": {"pass_at_k": {"1": interview, "5": interview}, "problems": 2},
                           "introductory": {"pass_at_k": {"1": intro, "5": intro}, "problems": 2}},
        "strict_accuracy": strict, "test_case_average": 0.5, "verdicts": {"pass": 2, "wrong_answer": 6},
        "problems": {f"p{i}": {"n": 2, "c": i % 2, "samples": []} for i in range(4)},
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


def _plan_samples(folder: Path) -> None:
    """Two plan-sampled problems: p0's second plan is the first with a passing program."""
    rows = []
    for pid, per_plan in {"p0": [0, 1, 1], "p1": [1, 0, 0]}.items():
        scores = [{"index": i, "programs": 2, "programs_passed": passed, "tests_passed": passed, "tests_total": 2,
                   "logprob": -1.0 - i} for i, passed in enumerate(per_plan)]
        chosen = per_plan.index(1)
        selection = {"chosen": chosen, "rule": "pass-share", "reason": f"plan {chosen} passed", "scores": scores}
        for s in range(2):
            rows.append({"problem_id": pid, "sample_index": s, "code": "print(1)\n", "strategy": "plan-sampling",
                         "problem_samples": 2, "plan": f"1. step of plan {chosen}", "plan_index": chosen,
                         "selection": selection,
                         "budget": {"model_calls": 5, "sequences": 11, "prompt_tokens": 100, "completion_tokens": 300,
                                    "programs_judged": 6, "seconds": 2.0}})
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_compares_codeplan_with_baseline(tmp_path: Path):
    baseline = _results(tmp_path / "baseline" / "direct", 0.10, 0.20, 0.10, 0.20, 0.0)
    codeplan = _results(tmp_path / "codeplan" / "plan-sampling", 0.25, 0.30, 0.20, 0.40, 0.10)
    _plan_samples(codeplan.parent)
    out = tmp_path / "report" / "report.md"
    # CodePLAN given first: the baseline is still the reference, found by its label.
    report = write_report([str(codeplan), str(baseline)], str(out))
    text = out.read_text()
    assert report["reference"] == "baseline/direct"
    assert "| pass@1 | 10.00 | 25.00 | +150.0% |" in text
    assert "| strict accuracy | 10.00 | 20.00 | +100.0% |" in text
    # Difficulty rows in the canonical order, and a reference of 0 has no relative change.
    assert text.index("| codeplan/plan-sampling | introductory") < text.index("| codeplan/plan-sampling | interview")
    assert "| baseline/direct | wrong_answer 6, pass 2 |" in text
    # Budget and every plan choice are explained.
    assert "| codeplan/plan-sampling | plan-sampling | 5 | 11 | 300 | 6 | 2 |" in text
    assert "| p0 | 1 | plan 1 passed |" in text
    # Plots exist, are PNGs and are linked.
    for name in ("report-pass-at-k.png", "report-plans.png"):
        assert (out.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    data = json.loads((out.parent / "report.json").read_text())
    # Figure 5 curve: with 1 plan only p1 is solved, from 2 plans on both are.
    assert data["plans_curve"]["codeplan/plan-sampling"] == [1, 2, 2]
    assert data["comparisons"][0]["rows"][0]["relative_change"] == pytest.approx(1.5)


def test_report_of_one_run_and_cli(tmp_path: Path):
    results = _results(tmp_path / "run", 0.5, 0.75, 0.5, 0.5, 0.5)
    out = tmp_path / "r.md"
    outcome = CliRunner().invoke(app, ["report", str(results), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    text = out.read_text()
    assert "| pass@1 | pass@5 |" in text and "50.00 | 75.00" in text
    assert "against" not in text  # nothing to compare with


def test_bad_results_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"problems": {}}))
    with pytest.raises(InputError, match="pass_at_k"):
        write_report([str(bad)], str(tmp_path / "r.md"))
    outcome = CliRunner().invoke(app, ["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r.md")])
    assert outcome.exit_code == 2 and "not found" in outcome.output


def test_relative_change():
    assert relative_change(0.046, 0.02) == pytest.approx(1.3)
    assert relative_change(0.1, 0.0) is None
    assert relative_change(None, 0.1) is None
