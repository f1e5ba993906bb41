"""`codeplan report` on constructed results.json files (and the samples beside them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.errors import InputError
from codeplan.metrics import SampleScore, aggregate
from codeplan.report import marked_summary, write_report
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
    assert "chosen plan had a program passing all example tests on 2 of 2 problems" in text
    assert "3 of 12 (25.0%) passed them all" in text
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
    assert "| pass@1 | pass@5 |" in text
    assert re.search(r"\| 50\.00 \[\d+\.\d\d, \d+\.\d\d\] \| 75\.00 \|", text)  # pass@1 with its interval
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


def _judged(folder: Path, outcomes: dict[str, list[bool]], total_problems: int) -> Path:
    """results.json as `codeplan evaluate` writes it: problem id -> one verdict per program
    (each passing all or none of 4 hidden tests), averaged with the evaluate stage's own code."""
    folder.mkdir(parents=True, exist_ok=True)
    scores = {pid: [SampleScore(ok, 4 * ok, 4) for ok in verdicts] for pid, verdicts in outcomes.items()}
    overall = aggregate(scores, [1])
    results = {"pass_at_k": overall["pass_at_k"], "strict_accuracy": overall["strict_accuracy"],
               "test_case_average": overall["test_case_average"], "num_problems": overall["num_problems"],
               "problems_without_samples": total_problems - len(outcomes),
               "problems": {pid: {"n": len(v), "c": sum(v), "samples": [
                   {"passed": ok, "verdict": "pass" if ok else "wrong_answer", "tests_passed": 4 * ok, "tests_total": 4}
                   for ok in v]} for pid, v in outcomes.items()}}
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


def test_paired_comparison_on_shared_problems_with_missing_ones_shown(tmp_path: Path):
    """24 problems, one program each. On the 20 both arms have, CodePLAN alone solves 8, the baseline
    alone 2, both 3: exact McNemar p = 2 * (1 + 10 + 45) / 2^10 = 0.109375, difference +30 points."""
    shared = {f"p{i:02}": (i < 8 or 10 <= i < 13, 8 <= i < 13) for i in range(20)}
    baseline = _judged(tmp_path / "baseline", {pid: [b] for pid, (_, b) in shared.items()} | {"p20": [True], "p21": [False]}, 24)
    codeplan = _judged(tmp_path / "codeplan", {pid: [a] for pid, (a, _) in shared.items()} | {"p22": [True]}, 24)
    out = tmp_path / "report.md"
    report = write_report([str(baseline), str(codeplan)], str(out), labels=["baseline", "codeplan"])
    text = out.read_text()
    base_run, plan_run = report["runs"]
    assert base_run["pass_at_k"]["1"] == pytest.approx(6 / 22) and plan_run["pass_at_k"]["1"] == pytest.approx(12 / 21)
    for run in (base_run, plan_run):
        assert set(run["intervals"]) == {"pass@1", "strict_accuracy", "test_case_average"}
        low, high = run["intervals"]["pass@1"]
        assert low < run["pass_at_k"]["1"] < high
    comparison = report["comparisons"][0]
    assert (comparison["problems_compared"], comparison["problems_missing_in_run"],
            comparison["problems_missing_in_reference"]) == (20, 2, 1)
    pass1 = comparison["rows"][0]
    assert pass1["metric"] == "pass@1" and pass1["method"] == "exact McNemar"
    assert pass1["p_value"] == 0.109375  # on the 20 shared problems only
    assert pass1["difference"] == pytest.approx(0.30)
    assert pass1["difference_interval"][0] < 0.30 < pass1["difference_interval"][1]
    test_case = comparison["rows"][-1]
    assert test_case["metric"] == "test-case average" and test_case["method"] == "paired bootstrap"
    assert test_case["difference"] == pytest.approx(0.30)
    # The markdown: missing problems counted and the denominator stated; interval, difference and p shown.
    assert re.search(r"\| baseline \| 22 \| 2 \| 1 \| 27\.27 \[\d+\.\d\d, \d+\.\d\d\] \|", text)
    assert re.search(r"\| codeplan \| 21 \| 3 \| 1 \| 57\.14 \[", text)
    assert "problems without samples (`no samples`" in text and "not counted as unsolved" in text
    assert "baseline 25.00 (of 24); codeplan 50.00 (of 24)" in text
    assert "Paired on the 20 problems both runs have samples for (codeplan lacks 2 of baseline's, baseline lacks 1" in text
    assert re.search(r"\| pass@1 \| 27\.27 \| 57\.14 \| \+109\.5% \| \+30\.00 \[\+\d+\.\d\d, \+\d+\.\d\d\] "
                     r"\| 0\.109 \(exact McNemar\) \|", text)
    assert "10,000 resamples, seed 0" in text
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["runs"][1]["intervals"]["pass@1"] == plan_run["intervals"]["pass@1"]
    assert saved["comparisons"][0]["rows"][0]["p_value"] == 0.109375


def test_several_programs_per_problem_use_the_paired_bootstrap(tmp_path: Path):
    outcomes = {f"p{i}": [i % 2 == 0, i % 3 == 0] for i in range(6)}
    first = _judged(tmp_path / "baseline", outcomes, 6)
    second = _judged(tmp_path / "again", outcomes, 6)
    row = write_report([str(first), str(second)], str(tmp_path / "r.md"))["comparisons"][0]["rows"][0]
    assert row["method"] == "paired bootstrap"
    assert (row["difference"], row["difference_interval"], row["p_value"]) == (0.0, [0.0, 0.0], 1.0)


def test_bad_problem_record_is_a_clear_error(tmp_path: Path):
    results = _judged(tmp_path / "run", {"p0": [True]}, 1)
    data = json.loads(results.read_text())
    data["problems"]["p0"]["c"] = 3
    results.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"\[p0\] field 'problems\.p0\.n'.*c=3"):
        write_report([str(results)], str(tmp_path / "r.md"))


def _with_generation(results: Path, budget: dict | None, cost: dict | None) -> None:
    """samples.jsonl beside results.json, one line a problem carrying `budget` (as generate writes
    it), and the judge's `cost` in results.json; None leaves either out (an older run's files)."""
    data = json.loads(results.read_text())
    if cost is not None:
        data["cost"] = cost
        results.write_text(json.dumps(data))
    rows = [{"problem_id": pid, "sample_index": 0, "code": "print(1)\n", "strategy": "direct", "problem_samples": 1,
             **({"budget": budget} if budget is not None else {})} for pid in data["problems"]]
    (results.parent / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_summary_has_a_row_per_run_with_cost_and_the_paired_difference_against_the_reference(tmp_path: Path):
    """The 24-problem arms above (CodePLAN +30 points on the 20 shared problems, McNemar p = 0.109375),
    with known costs; a third run made before codeplan recorded CPU seconds shows them as unknown."""
    shared = {f"p{i:02}": (i < 8 or 10 <= i < 13, 8 <= i < 13) for i in range(20)}
    baseline = _judged(tmp_path / "baseline", {pid: [b] for pid, (_, b) in shared.items()} | {"p20": [True], "p21": [False]}, 24)
    codeplan = _judged(tmp_path / "codeplan", {pid: [a] for pid, (a, _) in shared.items()} | {"p22": [True]}, 24)
    old = _judged(tmp_path / "old", {pid: [b] for pid, (_, b) in shared.items()}, 20)
    budget = {"model_calls": 1, "sequences": 1, "programs": 1, "prompt_tokens": 50, "completion_tokens": 80,
              "programs_judged": 0, "seconds": 4.0}
    _with_generation(baseline, {**budget, "cpu_seconds": 1.5}, {"programs_judged": 22, "cpu_seconds": 11.0})
    _with_generation(codeplan, {**budget, "programs": 8, "completion_tokens": 1200, "cpu_seconds": 9.25},
                     {"programs_judged": 21, "cpu_seconds": 42.0, "wall_seconds": 30.0, "sessions": 1})
    _with_generation(old, budget, None)
    out = tmp_path / "report.md"
    # The baseline given second: it is still the reference (its label says so), and the row order is the given one.
    report = write_report([str(codeplan), str(baseline), str(old)], str(out), labels=["codeplan", "baseline", "old"])
    text = out.read_text()
    rows = {row["run"]: row for row in report["summary"]}
    assert [row["run"] for row in report["summary"]] == ["codeplan", "baseline", "old"]
    assert rows["baseline"]["reference"] and rows["baseline"]["pass@1_difference"] is None
    plan = rows["codeplan"]
    assert plan["pass@1"] == pytest.approx(12 / 21) and plan["pass@1_interval"] == report["runs"][0]["intervals"]["pass@1"]
    assert (plan["programs_per_problem"], plan["tokens_per_problem"]) == (8, 1200)
    assert plan["generation_cpu_seconds_per_problem"] == 9.25
    assert plan["evaluation_cpu_seconds_per_problem"] == pytest.approx(42.0 / 21)
    assert plan["pass@1_difference"]["difference"] == pytest.approx(0.30)
    assert (plan["pass@1_difference"]["p_value"], plan["pass@1_difference"]["method"]) == (0.109375, "exact McNemar")
    assert rows["old"]["generation_cpu_seconds_per_problem"] is None and rows["old"]["evaluation_cpu_seconds_per_problem"] is None
    assert json.loads((tmp_path / "report.json").read_text())["summary"] == report["summary"]
    # The markdown: the Summary first, one table, the reference named in the header and on its row.
    assert text.index("## Summary") < text.index("## Results (hidden tests)")
    assert ("| run | pass@1 [95% interval] | strict acc. | test-case avg. | programs / tokens generated per problem | "
            "generation CPU s per problem | evaluation CPU s per problem | pass@1 minus baseline [95% interval], p |") in text
    assert re.search(r"\| codeplan \| 57\.14 \[\d+\.\d\d, \d+\.\d\d\] \| 57\.14 \| 57\.14 \| 8 / 1200 \| 9\.25 \| 2\.00 "
                     r"\| \+30\.00 \[\+\d+\.\d\d, \+\d+\.\d\d\], p 0\.109 \(exact McNemar\) \|", text)
    assert re.search(r"\| baseline \| 27\.27 \[[^]]+\] \| 27\.27 \| 27\.27 \| 1 / 80 \| 1\.50 \| 0\.50 \| reference \|", text)
    assert re.search(r"\| old \| 25\.00 \[[^]]+\] \| 25\.00 \| 25\.00 \| 1 / 80 \| unknown \| unknown \| \+0\.00 ", text)
    # The budget table gained the CPU column, unknown where it was not recorded.
    assert "| codeplan | direct | 1 | 1 | 1200 | 0 | 4 | 9.25 |" in text and "| old | direct | 1 | 1 | 80 | 0 | 4 | unknown |" in text


def test_summary_into_replaces_only_the_marked_block_and_refuses_a_file_without_it(tmp_path: Path):
    results = _results(tmp_path / "run", 0.5, 0.75, 0.5, 0.5, 0.5)
    readme = tmp_path / "README.md"
    readme.write_text("# An experiment\n\nBefore.\n\n<!-- summary:start -->\n| stale | table |\n<!-- summary:end -->\n\nAfter.\n")
    outcome = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "r.md"), "--summary-into", str(readme)])
    assert outcome.exit_code == 0, outcome.output
    text = readme.read_text()
    table = [line for line in (tmp_path / "r.md").read_text().split("## Summary")[1].split("## Results")[0].splitlines()
             if line.startswith("|")]
    assert text == ("# An experiment\n\nBefore.\n\n<!-- summary:start -->\n" + "\n".join(table)
                    + "\n<!-- summary:end -->\n\nAfter.\n")
    assert marked_summary(readme) == table and "/run | 50.00 [" in table[2] and table[2].endswith("| reference |")
    readme.write_text("# No markers\n")
    outcome = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "r.md"), "--summary-into", str(readme)])
    assert outcome.exit_code == 2 and "README.md" in outcome.output and "<!-- summary:start -->" in outcome.output


def test_a_run_is_also_compared_with_its_own_control(tmp_path: Path):
    """20 problems, one program each. The reranked baseline solves p00-p09; CodePLAN solves p00-p04 and
    p10: against its control it wins 1 and loses 5, so exact McNemar p = 2 * (1 + 6) / 2^6 = 0.21875 and
    the difference is -20 points. The reference (direct sampling, p00-p02) stays in its own column."""
    ids = [f"p{i:02}" for i in range(20)]
    direct = _judged(tmp_path / "baseline-direct", {pid: [pid < "p03"] for pid in ids}, 20)
    rerank = _judged(tmp_path / "baseline-rerank", {pid: [pid < "p10"] for pid in ids}, 20)
    plans = _judged(tmp_path / "codeplan", {pid: [pid < "p05" or pid == "p10"] for pid in ids}, 20)
    out = tmp_path / "report.md"
    report = write_report([str(direct), str(rerank), str(plans)], str(out),
                          labels=["baseline-direct", "baseline-rerank", "codeplan"],
                          controls={"codeplan": "baseline-rerank", "baseline-rerank": "not-run-yet"})
    rows = {row["run"]: row for row in report["summary"]}
    versus = rows["codeplan"]["pass@1_difference_to_control"]
    assert rows["codeplan"]["control"] == "baseline-rerank"
    assert (versus["method"], versus["p_value"]) == ("exact McNemar", 0.21875)
    assert versus["difference"] == pytest.approx(-0.20)
    assert rows["codeplan"]["pass@1_difference"]["difference"] == pytest.approx(0.15)  # still against the reference
    assert "control" not in rows["baseline-rerank"]  # its control has no results: no comparison
    text = out.read_text()
    assert text.count("## codeplan against baseline-rerank") == 1 and "## codeplan against baseline-direct" in text
    assert "| pass@1 minus baseline-direct [95% interval], p | pass@1 minus its control [95% interval], p |" in text
    assert re.search(r"\| codeplan \| 30\.00 \[[^]]+\] .* \| \+15\.00 \[[^]]+\], p [^|]+ \| -20\.00 \[[^]]+\], "
                     r"p 0\.219 \(exact McNemar\) \(vs baseline-rerank\) \|", text)
    assert re.search(r"\| baseline-direct \| .* \| reference \|  \|\n", text)  # no control: an empty cell
