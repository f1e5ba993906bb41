"""`codeplan data inspect|convert` through the CLI: output, and bad input as one line + exit 2."""

from __future__ import annotations

import json
import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.problems import read_problems

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["data", *args])


def mbpp_line(task_id: object, **over) -> str:
    record = {"text": "Add.", "code": "def add(a, b):\n    return a + b", "task_id": task_id,
              "test_setup_code": "", "test_list": ["assert add(1, 1) == 2", "assert add(2, 2) == 4"],
              "challenge_test_list": []}
    record.update(over)
    return json.dumps(record)


def test_inspect_json_counts_the_selection():
    result = run("inspect", "sample", "--json", "--split", "test")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["problems"] == summary["by_split"]["test"] and summary["problems"] > 0
    assert summary["with_public_tests"] == summary["problems"]
    assert set(summary["by_kind"]) <= {"stdin", "call", "assert"}
    assert summary["hidden_tests"]["min"] >= 3


def test_inspect_table_is_readable():
    result = run("inspect", "sample")
    assert result.exit_code == 0
    assert "with public tests" in result.stdout and "stdin" in result.stdout


def test_convert_writes_canonical_jsonl(tmp_path):
    out = tmp_path / "out.jsonl"
    result = run("convert", "sample", "--out", str(out), "--limit", "4")
    assert result.exit_code == 0, result.output
    assert len(read_problems(out)) == 4


@pytest.mark.parametrize("line, field", [
    ('{"text": "Add.", "code": ', None),  # malformed JSON
    (mbpp_line(12, test_list=None), "test_list"),  # missing field
    (mbpp_line("twelve"), "task_id"),  # mistyped field
])
def test_bad_mbpp_line_is_one_line_error_with_exit_2(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(mbpp_line(11) + "\n" + line + "\n" + mbpp_line(13) + "\n")
    result = run("inspect", str(path), "--json")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output
    assert f"{path}:2" in message
    if field:
        assert f"'{field}'" in message
    # --skip-invalid: the other records load and the bad one is counted in a warning.
    result = run("inspect", str(path), "--json", "--skip-invalid", "--format", "mbpp")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == 2
    assert "skipped 1 invalid record" in result.stderr


def test_apps_inputs_and_outputs_of_different_lengths(tmp_path):
    record = {"problem_id": 4, "question": "Q", "solutions": "[]", "difficulty": "interview", "url": "",
              "starter_code": "", "input_output": json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]})}
    path = tmp_path / "apps.jsonl"
    path.write_text(json.dumps(record) + "\n")
    result = run("inspect", str(path))
    assert result.exit_code == 2
    assert f"{path}:1 [4] field 'input_output.outputs'" in result.stderr
    assert "2 inputs but 1 outputs" in result.stderr


def test_unknown_format_and_missing_path(tmp_path):
    path = tmp_path / "what.jsonl"
    path.write_text(json.dumps({"hello": "world"}) + "\n")
    result = run("inspect", str(path))
    assert result.exit_code == 2 and "cannot detect the format" in result.stderr and f"{path}:1" in result.stderr
    result = run("inspect", str(path), "--format", "xml")
    assert result.exit_code == 2 and "unknown format 'xml'" in result.stderr
    result = run("inspect", str(tmp_path / "nowhere.jsonl"))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_split_on_data_without_splits_is_refused(tmp_path):
    path = tmp_path / "he.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n", "entry_point": "f",
                                "test": "def check(c):\n    pass\n", "canonical_solution": "    return 1\n"}) + "\n")
    result = run("inspect", str(path), "--split", "test")
    assert result.exit_code == 2 and "--split" in result.stderr


def test_duplicate_ids_are_refused_or_skipped(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(mbpp_line(11) + "\n" + mbpp_line(11) + "\n")
    result = run("inspect", str(path))
    assert result.exit_code == 2 and "[11] field 'id': duplicate problem id" in result.stderr
    result = run("inspect", str(path), "--json", "--skip-invalid")
    assert result.exit_code == 0 and json.loads(result.stdout)["problems"] == 1
    assert "skipped 1 invalid record" in result.stderr


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "codeplan", "data", "inspect", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "inspect" in done.stdout.lower()
