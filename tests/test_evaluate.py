"""`codeplan evaluate`: results.json contract, verdict cache (re-run free, resume), bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.config import DataConfig
from codeplan.errors import InputError
from codeplan import evaluate as evaluate_module
from codeplan.evaluate import EvaluateConfig, evaluate
from codeplan.problems import Problem, TestCase, write_problems

GOOD_ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
GOOD_CALL = "def twice(x):\n    return 2 * x\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    problems = [
        Problem(id="add", statement="Add two numbers.", kind="stdin", difficulty="introductory",
                hidden_tests=[TestCase(input="1 2\n", output="3\n"), TestCase(input="2 2\n", output="4\n")]),
        Problem(id="twice", statement="Double it.", kind="call", entry_point="twice", difficulty="interview",
                hidden_tests=[TestCase(input=[1], output=[2]), TestCase(input=[0], output=[0]), TestCase(input=[5], output=[10])]),
    ]
    write_problems(tmp_path / "problems.jsonl", problems)
    samples = [("add", GOOD_ADD), ("add", "print(3)\n"), ("add", "print(1 +\n"),
               ("twice", "def twice(x):\n    return x * x\n"), ("twice", GOOD_CALL), ("twice", GOOD_CALL)]
    with (tmp_path / "samples.jsonl").open("w") as handle:
        for problem_id, code in samples:
            handle.write(json.dumps({"problem_id": problem_id, "code": code, "sample_index": 0}) + "\n")
    return tmp_path


def config(workspace: Path, **judge) -> EvaluateConfig:
    return EvaluateConfig(data=DataConfig(path=str(workspace / "problems.jsonl")), samples=str(workspace / "samples.jsonl"),
                          out=str(workspace / "results.json"), k=[1, 2, 5], progress=False, judge={"workers": 2, **judge})


def test_results_follow_the_contract(workspace):
    report = evaluate(config(workspace))
    saved = json.loads((workspace / "results.json").read_text())
    assert saved["pass_at_k"] == report["pass_at_k"]
    add, twice = saved["problems"]["add"], saved["problems"]["twice"]
    assert (add["n"], add["c"], twice["n"], twice["c"]) == (3, 1, 3, 2)
    assert [s["verdict"] for s in add["samples"]] == ["pass", "wrong_answer", "compile_error"]
    assert [s["tests_passed"] for s in add["samples"]] == [2, 1, 0]
    assert [s["tests_passed"] for s in twice["samples"]] == [1, 3, 3]  # samples reported in file order
    # The first failing hidden test, as the judge saw it: stdin text, a call's arguments and value.
    assert add["samples"][1]["failure"] == {"test": 1, "input": "2 2\n", "expected": "4\n", "output": "3\n", "stderr": ""}
    assert twice["samples"][0]["failure"] == {"test": 0, "input": "[1]", "expected": "[2]", "output": "1", "stderr": ""}
    assert "failure" not in add["samples"][0] and "failure" not in add["samples"][2]  # passed; never ran a test
    assert saved["pass_at_k"]["1"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert saved["pass_at_k"]["5"] == 1.0  # k > n: the n samples are all there is
    assert saved["strict_accuracy"] == pytest.approx(0.5)
    assert saved["test_case_average"] == pytest.approx(((1 + 0.5 + 0) / 3 + (1 / 3 + 1 + 1) / 3) / 2)
    assert saved["per_difficulty"]["introductory"]["pass_at_k"]["1"] == pytest.approx(1 / 3)
    assert saved["per_difficulty"]["interview"]["strict_accuracy"] == pytest.approx(2 / 3)


class CountingJudge(evaluate_module.Judge):
    judged: list[int] = []

    def run(self, tasks, on_result=None):
        CountingJudge.judged.append(len(tasks))
        return super().run(tasks, on_result)


def test_rerun_is_free_and_a_killed_run_resumes(workspace, monkeypatch):
    monkeypatch.setattr(evaluate_module, "Judge", CountingJudge)
    CountingJudge.judged = []
    first = evaluate(config(workspace))
    cache = workspace / "results.json.cache.jsonl"
    # Six samples, two of them identical: five programs judged, five records.
    assert CountingJudge.judged == [5] and len(cache.read_text().splitlines()) == 5
    # The judge's cost: five distinct programs, their CPU as measured, one session's wall time.
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert first["cost"]["programs_judged"] == 5 and first["cost"]["sessions"] == 1
    assert first["cost"]["cpu_seconds"] == pytest.approx(sum(r["result"]["cpu_seconds"] for r in records), abs=1e-3)
    assert first["cost"]["wall_seconds"] == max(r["elapsed"] for r in records) > 0
    assert evaluate(config(workspace)) == first  # cost included: it comes from the cache, not this run's clock
    assert CountingJudge.judged == [5]  # nothing judged again
    # A run killed mid-way: three records and a torn fourth line.
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    resumed = evaluate(config(workspace))
    assert {k: v for k, v in resumed.items() if k != "cost"} == {k: v for k, v in first.items() if k != "cost"}
    assert CountingJudge.judged == [5, 2]
    # The killed session counts up to its last verdict on file, the resuming one in full.
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert resumed["cost"]["sessions"] == 2 and resumed["cost"]["programs_judged"] == 5
    assert resumed["cost"]["wall_seconds"] == pytest.approx(records[2]["elapsed"] + records[-1]["elapsed"], abs=1e-3)


def test_cost_of_verdicts_cached_before_sessions_were_recorded_has_unknown_wall_time(workspace):
    first = evaluate(config(workspace))
    cache = workspace / "results.json.cache.jsonl"
    old = [{k: v for k, v in json.loads(line).items() if k not in ("session", "elapsed")}
           for line in cache.read_text().splitlines()]
    cache.write_text("".join(json.dumps(record) + "\n" for record in old))
    cost = evaluate(config(workspace))["cost"]
    # The CPU is on every verdict, so it is still known; the wall time is not, and says so.
    assert cost == {**first["cost"], "wall_seconds": None, "sessions": 0}


def test_unknown_problem_id_names_file_line_and_field(workspace):
    with (workspace / "samples.jsonl").open("a") as handle:
        handle.write(json.dumps({"problem_id": "nope", "code": "print(1)"}) + "\n")
    with pytest.raises(InputError) as err:
        evaluate(config(workspace))
    assert err.value.line == 7 and err.value.field == "problem_id" and "samples.jsonl" in str(err.value)


def test_cli_evaluate(workspace):
    runner = CliRunner()
    args = ["evaluate", "--data", str(workspace / "problems.jsonl"), "--samples", str(workspace / "samples.jsonl"),
            "--out", str(workspace / "cli.json"), "--workers", "1", "--no-progress"]
    result = runner.invoke(app, args + ["--k", "1,2"])
    assert result.exit_code == 0, result.output
    assert set(json.loads((workspace / "cli.json").read_text())["pass_at_k"]) == {"1", "2"}
    bad = runner.invoke(app, args + ["--k", "one"])
    assert bad.exit_code == 2 and "k" in bad.output


def test_calibrated_evaluation_times_each_reference_once_and_resumes_with_it(tmp_path, monkeypatch):
    reference = ("import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.1:\n    pass\n"
                 "a, b = map(int, input().split())\nprint(a + b)\n")
    write_problems(tmp_path / "problems.jsonl", [Problem(
        id="add", statement="Add.", kind="stdin", solutions=[reference],
        hidden_tests=[TestCase(input="1 2\n", output="3\n"), TestCase(input="2 2\n", output="4\n")])])
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"problem_id": "add", "code": "while True:\n    pass\n"}) + "\n")
    report = evaluate(config(tmp_path, calibrate=True))
    assert report["verdicts"] == {"timeout": 1} and report["config"]["calibrate"] is True
    cache = [json.loads(line) for line in (tmp_path / "results.json.cache.jsonl").read_text().splitlines()]
    timings = [record for record in cache if "timing" in record]
    assert len(timings) == 1 and 0.05 < timings[0]["cpu"] < 1.0
    # Each of its 2 tests timed out at the 1 s floor (4 x 0.1 s is below it), not the 4 s APPS default.
    assert next(record for record in cache if "key" in record)["result"]["cpu_seconds"] < 4.0

    # A later run with a new sample reuses the measured time: the reference is not run again.
    def no_second_timing(*args, **kwargs):
        raise AssertionError("the reference was timed again")

    monkeypatch.setattr(evaluate_module.Judge, "_timing_on", no_second_timing)
    with samples.open("a") as handle:
        handle.write(json.dumps({"problem_id": "add", "code": GOOD_ADD}) + "\n")
    assert evaluate(config(tmp_path, calibrate=True))["verdicts"] == {"timeout": 1, "pass": 1}


def test_reference_outputs_too_large_to_cache_still_judge_and_resume(tmp_path):
    # HumanEval/130's reference returns long lists of big numbers for ~1,000 inputs: together more
    # values than one cache line may hold. The evaluation must judge with them all the same.
    reference = "def zeros(n):\n    return [0] * n\n"
    write_problems(tmp_path / "problems.jsonl", [Problem(
        id="zeros", statement="", kind="call", entry_point="zeros", outputs_from_solution=True, atol=0.0,
        solutions=[reference], hidden_tests=[TestCase(input=[1_100_000]), TestCase(input=[1_100_000]), TestCase(input=[3])])])
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"problem_id": "zeros", "code": reference}) + "\n"
                       + json.dumps({"problem_id": "zeros", "code": "def zeros(n):\n    return [0] * min(n, 5)\n"}) + "\n")
    report = evaluate(config(tmp_path))
    assert report["verdicts"] == {"pass": 1, "wrong_answer": 1}
    assert report["problems"]["zeros"]["samples"][1]["tests_passed"] == 1  # only the short test
    cache = [json.loads(line) for line in (tmp_path / "results.json.cache.jsonl").read_text().splitlines()]
    assert not [record for record in cache if "reference" in record]  # too large: not cached
    # Resumed with one more sample: the outputs are computed again and the new program judged.
    with samples.open("a") as handle:
        handle.write(json.dumps({"problem_id": "zeros", "code": "def zeros(n):\n    return [1] * n\n"}) + "\n")
    assert evaluate(config(tmp_path))["verdicts"] == {"pass": 1, "wrong_answer": 2}
