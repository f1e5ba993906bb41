"""APPS: the Hugging Face JSONL (`codeparrot/apps` columns) and the original release's folder layout.

Call-based problems (`fn_name` in input_output, Codewars functions and LeetCode `class Solution`)
keep their inputs and outputs exactly as APPS stores them: the judge owns APPS's comparison rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeplan.data.common import Fields, InvalidRecords, load_records
from codeplan.data.public_tests import call_tests, stdin_examples
from codeplan.errors import InputError
from codeplan.problems import Problem, TestCase

PLAN_TEACHER = "gpt-3.5-turbo (CodePLAN release)"
SPLITS = ("train", "test")


def apps_problem(fields: Fields, *, problem_id: str, io: Any, solutions: Any, question: str, starter_code: str,
                 difficulty: str | None, url: str | None, split: str | None,
                 examples: dict[str, Any] | None = None) -> Problem:
    """Build one APPS problem; `fields` names where a bad value came from."""
    if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
        raise fields.error("expected a list of program strings", "solutions")
    hidden: list[TestCase] = []
    fn_name = None
    if io is not None:  # APPS leaves input_output empty for a few problems: no tests then
        if not isinstance(io, dict):
            raise fields.error("expected an object with 'inputs' and 'outputs'", "input_output")
        fn_name = io.get("fn_name")
        if fn_name is not None and not isinstance(fn_name, str):
            raise fields.error("expected a string", "input_output.fn_name")
        hidden = _tests(fields, io, "input_output", call=fn_name is not None)
    kind = "call" if fn_name else "stdin"
    if examples is not None:
        public = _tests(fields, examples, "example_input_output", call=fn_name is not None)
    elif fn_name:
        public = call_tests(question, fn_name)
    else:
        public = stdin_examples(question)
    metadata: dict[str, Any] = {"url": url} if url else {}
    return Problem(id=problem_id, source="apps", statement=question, starter_code=starter_code or "", kind=kind,
                   entry_point=fn_name, solutions=solutions, public_tests=public, hidden_tests=hidden,
                   difficulty=difficulty, split=split, metadata=metadata)


def _tests(fields: Fields, io: dict[str, Any], name: str, *, call: bool) -> list[TestCase]:
    inputs, outputs = io.get("inputs"), io.get("outputs")
    for key, value in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(value, list):
            raise fields.error("missing or not a list", f"{name}.{key}")
    if len(inputs) != len(outputs):
        raise fields.error(f"{len(inputs)} inputs but {len(outputs)} outputs", f"{name}.outputs")
    if call:
        return [TestCase(input=i, output=o) for i, o in zip(inputs, outputs)]
    # stdin: APPS sometimes stores a test as a list of lines; its harness joins them with newlines.
    return [TestCase(input=_text(fields, i, f"{name}.inputs"), output=_text(fields, o, f"{name}.outputs"))
            for i, o in zip(inputs, outputs)]


def _text(fields: Fields, value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise fields.error(f"expected a string (stdin test), got {type(value).__name__}", field)


# ---- Hugging Face JSONL ------------------------------------------------------------------------

def apps_from_record(record: dict[str, Any], *, path: str | Path, line: int | None,
                     split: str | None = None) -> Problem:
    raw_id = record.get("problem_id")
    fields = Fields(record, path=path, line=line, record_id=None if raw_id is None else str(raw_id))
    if raw_id is None:
        raise fields.error("missing field", "problem_id")
    if not isinstance(raw_id, (int, str)) or isinstance(raw_id, bool):
        raise fields.error("expected an integer or string", "problem_id")
    if "input_output" not in record:
        raise fields.error("missing field", "input_output")
    split_value = record.get("split", split)
    if split_value is not None and not isinstance(split_value, str):
        raise fields.error("expected a string", "split")
    return apps_problem(
        fields, problem_id=str(raw_id), io=fields.json_field("input_output", required=False),
        solutions=fields.json_field("solutions", required=False, default=[]),
        question=fields.get("question", str), starter_code=fields.get("starter_code", str, required=False, default=""),
        difficulty=fields.get("difficulty", str, required=False), url=fields.get("url", str, required=False),
        split=split_value)


def load_apps_jsonl(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, apps_from_record)


# ---- original folder layout --------------------------------------------------------------------

def problem_folders(path: Path) -> list[tuple[Path, str | None, str]]:
    """(folder, split, id) for each problem under `path`: one problem, a split folder, or the root.

    Ids are the folder names ("0003"); when the root holds both train/ and test/, ids become
    "train/0003", "test/0003", since APPS numbers each split from 0000.
    """
    if (path / "question.txt").is_file():
        split = path.parent.name if path.parent.name in SPLITS else None
        return [(path, split, path.name)]
    split_dirs = [path / s for s in SPLITS if (path / s).is_dir()]
    if split_dirs:
        prefix = len(split_dirs) > 1
        return [(folder, split_dir.name, f"{split_dir.name}/{folder.name}" if prefix else folder.name)
                for split_dir in split_dirs for folder in _children(split_dir)]
    children = _children(path)
    if not children:
        raise InputError("not an APPS folder: no question.txt in it, in its sub-folders, or in train/ or test/",
                         path=path)
    split = path.name if path.name in SPLITS else None
    return [(folder, split, folder.name) for folder in children]


def _children(path: Path) -> list[Path]:
    return sorted(child for child in path.iterdir() if child.is_dir() and (child / "question.txt").is_file())


def _read_json(folder: Path, name: str, *, required: bool) -> Any:
    file = folder / name
    if not file.is_file():
        if required:
            raise InputError("missing file", path=file, record=folder.name)
        return None
    text = file.read_text(encoding="utf-8")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=file, line=err.lineno, record=folder.name) from None


def apps_from_folder(folder: Path, split: str | None, problem_id: str) -> Problem:
    metadata = _read_json(folder, "metadata.json", required=False) or {}
    fields = Fields(metadata if isinstance(metadata, dict) else {}, path=folder / "metadata.json",
                    record_id=problem_id)
    if not isinstance(metadata, dict):
        raise fields.error("expected a JSON object")
    starter = folder / "starter_code.py"
    examples = _read_json(folder, "example_input_output.json", required=False)
    io = _read_json(folder, "input_output.json", required=False)
    solutions = _read_json(folder, "solutions.json", required=False) or []
    question = (folder / "question.txt").read_text(encoding="utf-8")
    # Field errors name the folder; the field path says which file ("input_output.outputs").
    where = Fields({}, path=folder, record_id=problem_id)
    return apps_problem(where, problem_id=problem_id, io=io, solutions=solutions, question=question,
                        starter_code=starter.read_text(encoding="utf-8") if starter.is_file() else "",
                        difficulty=fields.get("difficulty", str, required=False),
                        url=fields.get("url", str, required=False), split=split, examples=examples)


def load_apps_folder(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    for folder, split, problem_id in problem_folders(path):
        try:
            yield apps_from_folder(folder, split, problem_id)
        except InputError as err:
            invalid.add(err)


def load_folder_plans(path: str | Path) -> list[dict[str, Any]]:
    """The plans.json files of an APPS folder layout as plans.jsonl records (one per solution).

    plans.json holds one plan string per reference solution, in solutions.json order: the CodePLAN
    release's gpt-3.5-turbo backward-reasoning plans. Problem ids follow `problem_folders`.
    """
    records: list[dict[str, Any]] = []
    for folder, _split, problem_id in problem_folders(Path(path)):
        plans = _read_json(folder, "plans.json", required=False)
        if plans is None:
            continue
        if not isinstance(plans, list) or not all(isinstance(p, str) for p in plans):
            raise InputError("expected a list of plan strings", path=folder / "plans.json", record=problem_id)
        records.extend({"problem_id": problem_id, "solution_index": index, "plan": plan, "direction": "backward",
                        "teacher": PLAN_TEACHER} for index, plan in enumerate(plans))
    return records
