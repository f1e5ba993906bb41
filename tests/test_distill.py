"""`codeplan distill`: plan cleaning, solution choice, and whole runs against a fault-injecting teacher
and against `codeplan serve` with a tiny model, including a run killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeplan.config import DataConfig
from codeplan.distill import DistillConfig, choose_solutions, distill
from codeplan.jsonl import read_jsonl
from codeplan.problems import Problem, TestCase, write_problems
from test_llm_openai import MARK, FakeTeacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- plan cleaning ------------------------------------------------------------------------------


def test_solution_choice_rules() -> None:
    problem = Problem(id="p", statement="s", kind="stdin", solutions=["x = 1\nprint(x)", "print(1)", " ", "print( 1 )"])
    assert choose_solutions(problem, "first", None) == [0, 1, 3]
    assert choose_solutions(problem, "first", 2) == [0, 1]
    assert choose_solutions(problem, "shortest", 2) == [1, 3]
    assert choose_solutions(problem, "all", 1) == [0, 1, 3]


# ---- whole runs ---------------------------------------------------------------------------------

def _problems(path: Path, count: int, solutions: int = 2) -> Path:
    problems = [Problem(id=f"p{k}", statement=f"Problem p{k}: print ok.", kind="stdin",
                        solutions=[f"print('ID=p{k} SOL={s}')\nprint('ok')" for s in range(solutions)],
                        hidden_tests=[TestCase(input="", output="ok\n")])
                for k in range(count)]
    write_problems(path, problems)
    return path


def _config(data: Path, out: Path, url: str, **overrides: object) -> DistillConfig:
    settings: dict[str, object] = {
        "data": DataConfig(path=str(data)), "out": str(out), "teacher_url": url, "teacher_model": "teacher",
        "concurrency": 4, "request_timeout": 0.5, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05,
        "progress": False} | overrides
    return DistillConfig(**settings)  # type: ignore[arg-type]


def _plans_by_key(out: Path) -> dict[tuple[str, int], list[dict]]:
    found: dict[tuple[str, int], list[dict]] = {}
    for record in read_jsonl(out):
        found.setdefault((record["problem_id"], record["solution_index"]), []).append(record)
    return found


def _side_records(path: Path) -> list[dict]:
    """A failures/rejected file's records: it exists only once something was filed in it."""
    return read_jsonl(path) if path.exists() else []


def _assert_filed_right(plans: dict[tuple[str, int], list[dict]]) -> None:
    for (pid, sol), records in plans.items():
        assert len(records) == 1, f"{pid}#{sol} has {len(records)} plans"
        marker = MARK.search(records[0]["plan"])
        assert marker and (marker.group(1), int(marker.group(2))) == (pid, sol), "plan filed under the wrong key"


FAULT_CYCLE = ["500", "429", "hang", "garbage", "empty_choices", "drop", "empty_content", "refuse", None]


def test_distill_through_every_fault_files_each_plan_once_under_its_solution(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 9)
    out = tmp_path / "plans.jsonl"

    def schedule(key: tuple[str, int], attempt: int) -> str | None:
        if key == ("p4", 1):
            return "500"  # this one never gets through
        k = int(key[0][1:]) * 2 + key[1]
        return FAULT_CYCLE[k % len(FAULT_CYCLE)] if attempt == 0 else None

    with FakeTeacher(schedule, hang_seconds=1.5) as server:
        summary = distill(_config(data, out, server.url, price_in=1.0, price_out=2.0))
    plans = _plans_by_key(out)
    expected = {(f"p{k}", s) for k in range(9) for s in range(2)}
    assert set(plans) == expected - {("p4", 1)}
    _assert_filed_right(plans)
    record = next(iter(plans.values()))[0]
    assert record["direction"] == "backward" and record["teacher"] == "teacher" and record["plan_index"] == 0
    assert record["plan"].startswith("1. Read the input of ") and "hope" not in record["plan"]
    [failure] = read_jsonl(tmp_path / "plans.failures.jsonl")
    assert (failure["problem_id"], failure["solution_index"], failure["kind"]) == ("p4", 1, "server_error")
    assert summary["plans_written"] == 17 and summary["failed"] == 1
    # 11 units hit one transport fault (one retry each), the dead one used its 3 retries, and 4 units
    # whose answer was empty or a refusal were asked once more.
    assert summary["retries"] == 11 + 3 and summary["requests"] == 18 + 14 + 4
    assert summary["prompt_tokens"] == 10 * sum(1 for _, fault in server.log if fault in (None, "empty_content", "refuse"))
    assert summary["cost"] == pytest.approx((summary["prompt_tokens"] + 2 * summary["completion_tokens"]) / 1e6)
    assert json.loads((tmp_path / "plans.summary.json").read_text())["plans_written"] == 17

    # The teacher recovers: a re-run asks only for the failed unit and clears it from the failures file.
    with FakeTeacher() as server:
        again = distill(_config(data, out, server.url))
    assert {key for key, _ in server.log} == {("p4", 1)}
    assert again["plans_written"] == 1 and again["plans_on_file_before"] == 17 and again["failed"] == 0
    plans = _plans_by_key(out)
    assert set(plans) == expected
    _assert_filed_right(plans)
    assert not (tmp_path / "plans.failures.jsonl").exists()  # nothing failed again: no failures file


def test_a_clean_run_leaves_no_empty_side_files(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 2, solutions=1)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher() as server:
        summary = distill(_config(data, out, server.url))
    assert summary["plans_written"] == 2 and summary["failed"] == 0
    assert sorted(f.name for f in tmp_path.iterdir()) == ["plans.jsonl", "plans.summary.json", "problems.jsonl"]
    with FakeTeacher() as server:  # a re-run with nothing to do creates none either
        distill(_config(data, out, server.url))
    assert server.log == [] and not (tmp_path / "plans.failures.jsonl").exists()


def test_unusable_answers_are_retried_then_recorded_with_the_reason(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 2, solutions=1)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(lambda key, attempt: "refuse" if key[0] == "p1" else None) as server:
        summary = distill(_config(data, out, server.url, max_attempts=2))
    assert set(_plans_by_key(out)) == {("p0", 0)}
    [failure] = read_jsonl(tmp_path / "plans.failures.jsonl")
    assert failure["problem_id"] == "p1" and failure["kind"] == "bad_answer" and "refused" in failure["reason"]
    assert failure["attempts"] == 2 and summary["failed"] == 1


def test_several_plans_per_solution_and_solution_choice(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 2, solutions=3)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher() as server:
        distill(_config(data, out, server.url, plans_per_solution=2, max_solutions=2))
    records = read_jsonl(out)
    keys = sorted((r["problem_id"], r["solution_index"], r["plan_index"]) for r in records)
    assert keys == [(f"p{k}", s, i) for k in range(2) for s in range(2) for i in range(2)]
    assert len(server.log) == 4  # one request with n=2 per solution
    variants = {r["plan"].split("variant ")[1][0] for r in records if r["problem_id"] == "p0" and r["solution_index"] == 0}
    assert variants == {"0", "1"}


def test_forward_plans_come_from_the_statement_alone(tmp_path: Path) -> None:
    problems = [Problem(id="f1", statement="Print a greeting. ID=f1 SOL=0", kind="stdin",
                        solutions=["print('hello')  # ID=zz SOL=7"])]
    write_problems(tmp_path / "problems.jsonl", problems)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher() as server:
        distill(_config(tmp_path / "problems.jsonl", out, server.url, forward=True))
    [record] = read_jsonl(out)
    assert record["direction"] == "forward" and "ID=f1 SOL=0" in record["plan"]
    assert server.log[0][0] == ("f1", 0)  # the teacher saw the statement, not the solution's marker


def test_fatal_teacher_error_stops_the_run_and_a_rerun_finishes(tmp_path: Path) -> None:
    from codeplan.errors import SetupError

    data = _problems(tmp_path / "problems.jsonl", 6, solutions=1)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(lambda key, attempt: "401" if key == ("p3", 0) else None) as server:
        with pytest.raises(SetupError, match="401"):
            distill(_config(data, out, server.url, concurrency=1))
    assert len(read_jsonl(out)) == 3  # p0..p2 were written before the bad answer
    with FakeTeacher() as server:
        distill(_config(data, out, server.url))
    assert {key for key, _ in server.log} == {(f"p{k}", 0) for k in range(3, 6)}
    _assert_filed_right(_plans_by_key(out))
    assert len(read_jsonl(out)) == 6


def _distill_in_background(data: Path, out: Path, url: str, *, lines: int) -> subprocess.Popen:
    """`codeplan distill` in its own process, returned once `out` has `lines` records."""
    command = [sys.executable, "-c", "from codeplan.cli import app; app()", "distill", "--data", str(data),
               "--out", str(out), "--teacher-url", url, "--teacher-model", "teacher", "--concurrency", "2",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < lines):
        time.sleep(0.02)
    return process


def test_killed_run_resumes_without_losing_or_duplicating_plans(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 20)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(delay=0.05) as server:
        process = _distill_in_background(data, out, server.url, lines=6)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        written_before = out.read_text().count("\n")
        assert 6 <= written_before < 40, process.stderr.read().decode() if process.stderr else ""
        with out.open("a") as handle:  # what a kill in the middle of a write leaves behind
            handle.write('{"problem_id": "p1", "solution_in')
        first_run = len(server.log)
        distill(_config(data, out, server.url, concurrency=4))
    plans = _plans_by_key(out)
    assert set(plans) == {(f"p{k}", s) for k in range(20) for s in range(2)}
    _assert_filed_right(plans)
    # Only the plans not on file (and those in flight at the kill) were asked for again.
    assert len(server.log) - first_run <= 40 - written_before + 2


def test_verify_keeps_only_plans_whose_code_passes(tmp_path: Path) -> None:
    pytest.importorskip("codeplan.judge")
    data = _problems(tmp_path / "problems.jsonl", 4, solutions=1)
    out = tmp_path / "plans.jsonl"
    code = lambda key: "print('ok')" if int(key[0][1:]) % 2 == 0 else "print('wrong')"  # noqa: E731
    with FakeTeacher(coder=code) as server:
        summary = distill(_config(data, out, server.url, verify=True, judge={"sandbox": False, "workers": 2}))
    assert sorted(r["problem_id"] for r in read_jsonl(out)) == ["p0", "p2"]
    assert all(r["verified"] is True for r in read_jsonl(out))
    rejected = read_jsonl(tmp_path / "plans.rejected.jsonl")
    assert sorted(r["problem_id"] for r in rejected) == ["p1", "p3"]
    assert rejected[0]["verification"]["verdict"] == "wrong_answer"
    assert summary["verify_kept_share"] == 0.5
    with FakeTeacher(coder=code) as server:  # judged plans are done, kept or not
        distill(_config(data, out, server.url, verify=True, judge={"sandbox": False}))
    assert server.log == []


def test_distill_against_codeplan_serve_with_a_tiny_model(tmp_path: Path, tiny_causal_lm: Path) -> None:
    from codeplan.llm.hf import HFGenerator
    from codeplan.serve import background_server, create_app

    data = _problems(tmp_path / "problems.jsonl", 4)
    out = tmp_path / "plans.jsonl"
    app = create_app(HFGenerator(str(tiny_causal_lm)), "tiny")
    with background_server(app) as url:
        summary = distill(_config(data, out, url, teacher_model="tiny", request_timeout=60, max_tokens=8, temperature=1.0,
                                  max_attempts=4))
    plans = _plans_by_key(out)
    assert set(plans) == {(f"p{k}", s) for k in range(4) for s in range(2)}
    assert all(len(records) == 1 and records[0]["plan"].startswith("1. ") for records in plans.values())
    assert summary["requests"] >= 8 and summary["prompt_tokens"] > 0 and 0 < summary["completion_tokens"]


def test_config_needs_exactly_one_teacher(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DistillConfig(data=DataConfig(path="x"), out="o")
    with pytest.raises(ValidationError):
        DistillConfig(data=DataConfig(path="x"), out="o", teacher="hf:m", teacher_url="http://h")
    with pytest.raises(ValidationError):
        DistillConfig(data=DataConfig(path="x"), out="o", teacher_url="http://h")


def test_local_teacher_batches_units_and_resumes(tmp_path: Path, tiny_causal_lm: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 3)
    out = tmp_path / "plans.jsonl"
    settings = {"data": DataConfig(path=str(data)), "out": str(out), "teacher": f"hf:{tiny_causal_lm}",
                "max_tokens": 6, "temperature": 1.0, "max_attempts": 4, "backend": {"batch_size": 4}, "progress": False}
    first = distill(DistillConfig(**settings | {"data": DataConfig(path=str(data), limit=2)}))
    assert first["plans_written"] + first["failed"] == 4
    second = distill(DistillConfig(**settings))
    assert second["plans_on_file_before"] == first["plans_written"]
    plans = _plans_by_key(out)
    failed = {(r["problem_id"], r["solution_index"]) for r in _side_records(tmp_path / "plans.failures.jsonl")}
    assert set(plans) | failed == {(f"p{k}", s) for k in range(3) for s in range(2)}
    assert all(len(records) == 1 for records in plans.values()) and not set(plans) & failed
    assert all(r["teacher"] == f"hf:{tiny_causal_lm}" for records in plans.values() for r in records)
    # Finished: a re-run does not load the teacher (this one does not exist) and keeps the summary.
    third = distill(DistillConfig(**settings | {"teacher": f"hf:{tmp_path / 'no-such-model'}"}))
    assert third == second and _plans_by_key(out) == plans


def test_ctrl_c_stops_cleanly_with_whole_records_on_file(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 20)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(delay=0.1) as server:
        process = _distill_in_background(data, out, server.url, lines=2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and b"interrupted" in stderr
    text = out.read_text()
    assert text.endswith("\n") and 2 <= len(read_jsonl(out)) < 40
    _assert_filed_right(_plans_by_key(out))


def test_local_teacher_with_verify_rejects_plans_whose_code_fails(tmp_path: Path, tiny_causal_lm: Path) -> None:
    pytest.importorskip("codeplan.judge")
    data = _problems(tmp_path / "problems.jsonl", 2, solutions=1)
    out = tmp_path / "plans.jsonl"
    summary = distill(DistillConfig(data=DataConfig(path=str(data)), out=str(out), teacher=f"hf:{tiny_causal_lm}",
                                    max_tokens=6, temperature=1.0, max_attempts=4, verify=True, verify_max_tokens=8,
                                    judge={"sandbox": False, "workers": 2}, progress=False))
    # A random two-layer model writes no program that prints "ok": every plan is judged and rejected.
    rejected = _side_records(tmp_path / "plans.rejected.jsonl")
    assert read_jsonl(out) == [] and len(rejected) + summary["failed"] == 2
    assert all(r["verified"] is False and r["verification"]["passed"] is False for r in rejected)
    assert summary["verify_kept_share"] in (0.0, None)


def test_a_verify_request_that_fails_leaves_the_plan_to_a_rerun(tmp_path: Path) -> None:
    pytest.importorskip("codeplan.judge")
    data = _problems(tmp_path / "problems.jsonl", 2, solutions=1)
    out = tmp_path / "plans.jsonl"
    # p1's plan arrives (its first request) but every request after it, the verify ones, gets a 500.
    schedule = lambda key, attempt: "500" if key[0] == "p1" and attempt >= 1 else None  # noqa: E731
    with FakeTeacher(schedule, coder=lambda key: "print('ok')") as server:
        summary = distill(_config(data, out, server.url, verify=True, judge={"sandbox": False}, max_retries=1))
    assert [r["problem_id"] for r in read_jsonl(out)] == ["p0"]
    [failure] = read_jsonl(tmp_path / "plans.failures.jsonl")
    assert failure["problem_id"] == "p1" and failure["kind"] == "verify_server_error"
    assert not (tmp_path / "plans.rejected.jsonl").exists() and summary["failed"] == 1
    with FakeTeacher(coder=lambda key: "print('ok')") as server:
        distill(_config(data, out, server.url, verify=True, judge={"sandbox": False}))
    assert sorted(r["problem_id"] for r in read_jsonl(out)) == ["p0", "p1"]


def test_a_teacher_that_is_down_stops_the_run_early(tmp_path: Path) -> None:
    from codeplan.errors import SetupError

    data = _problems(tmp_path / "problems.jsonl", 30, solutions=1)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(lambda key, attempt: "500") as server:
        with pytest.raises(SetupError, match="5 units in a row failed"):
            distill(_config(data, out, server.url, concurrency=1, max_retries=1, max_consecutive_failures=5))
    assert len(server.log) == 10  # five units, two attempts each, not thirty
    assert len(read_jsonl(tmp_path / "plans.failures.jsonl")) == 5
