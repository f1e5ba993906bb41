"""The loaders on the real benchmark files in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from codeplan.cli import app
from codeplan.config import DataConfig
from codeplan.data import load_folder_plans, load_problems

pytestmark = pytest.mark.shared_data


def inspect(*args: str) -> dict:
    result = CliRunner().invoke(app, ["data", "inspect", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("rel, extra, count", [
    ("apps/apps_train_subset.jsonl", [], 100),
    ("apps/folder/train", [], 9),
    ("apps/folder/test", [], 5),
    ("apps/folder", [], 14),
    ("mbpp/mbpp.jsonl", ["--split", "test"], 500),
    ("mbpp/mbpp.jsonl", ["--split", "train"], 374),
    ("humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz", [], 164),
    ("mbppplus/MbppPlus-767efcc.jsonl", [], 399),
])
def test_counts(shared_data, rel, extra, count):
    assert inspect(str(shared_data / rel), *extra)["problems"] == count


def test_humaneval_alias_count():
    summary = inspect("humaneval")
    assert summary["problems"] == 164 and summary["by_kind"] == {"assert": 164}


def test_apps_statement_examples_match_the_official_example_files(shared_data):
    """The statement parser recovers exactly the examples APPS ships in example_input_output.json."""
    from codeplan.data.public_tests import stdin_examples

    folders = sorted((shared_data / "apps/folder/test").iterdir())
    assert folders
    for folder in folders:
        official = json.loads((folder / "example_input_output.json").read_text())
        parsed = stdin_examples((folder / "question.txt").read_text())
        assert [t.input for t in parsed] == official["inputs"], folder.name
        assert [t.output.strip() for t in parsed] == [o.strip() for o in official["outputs"]], folder.name


def test_apps_folder_plans(shared_data):
    plans = load_folder_plans(shared_data / "apps/folder/train")
    assert {p["problem_id"] for p in plans} == {"0003", "0018", "0030", "0034", "0060"}
    problems = {p.id: p for p in load_problems(DataConfig(path=str(shared_data / "apps/folder/train")))}
    for plan in plans:  # one plan per reference solution
        assert plan["solution_index"] < len(problems[plan["problem_id"]].solutions)


def test_evalplus_fields(shared_data):
    problems = load_problems(DataConfig(path=str(shared_data / "humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz")))
    first = problems[0]
    assert first.id == "HumanEval/0" and first.kind == "call" and first.outputs_from_solution
    assert first.solutions[0].startswith(first.starter_code) and "contract" in first.metadata
    assert all(t.output is None for t in first.hidden_tests) and len(first.public_tests) == 2
