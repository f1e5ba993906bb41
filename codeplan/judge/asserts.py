"""Assertion tests split so the expected value never reaches the program (MBPP, HumanEval).

`assert f(x) == LITERAL` becomes the expression `f(x)`, evaluated in the sandbox, and the literal's
value, computed and compared here in the judge; a program reading its caller's code finds no
expected output. Tests of any other shape run whole inside the sandbox.
"""

from __future__ import annotations

import ast
import functools
from typing import Any


@functools.lru_cache(maxsize=1 << 16)  # every program of a problem has the same tests: parse each once
def split_assert(source: str) -> tuple[str, Any] | None:
    """`assert EXPR == LITERAL` -> (EXPR source, literal value); `assert f(ARGS)` / `assert not f(ARGS)`
    (no calls in ARGS) -> ("not not (f(ARGS))", True / False); None when the test has another shape.
    (The value is shared between calls: never mutate it.)"""
    try:
        tree = ast.parse(source.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    if tree.body[0].msg is not None and not _is_literal(tree.body[0].msg):
        return None  # a literal message only matters on failure (MBPP's `assert f(x) == -1,-6` is `== -1`)
    test = tree.body[0].test
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    call = test.operand if negated else test
    # Only a named function on plain arguments: `math.isclose(f(1), 2.0)` would carry its expected value.
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not any(
            isinstance(node, ast.Call) for node in ast.walk(call) if node is not call):
        # Both forms send the same code, so the program cannot read which truth value is wanted;
        # `not` (which nothing can rebind) turns the program's value into a real bool in its own process.
        return f"not not ({ast.unparse(call)})", not negated
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    left, right = test.left, test.comparators[0]
    for expr, literal in ((left, right), (right, left)):
        try:
            value = expected_value(literal)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, ZeroDivisionError, OverflowError):
            continue
        return ast.unparse(expr), value
    return None


CONVERSIONS = {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}
ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b}


def expected_value(node: ast.expr) -> Any:
    """The value of a test's expected side, computed in the judge: a literal, a literal passed to
    tuple/list/set/frozenset (HumanEval's `tuple([2, 6, 3])`), or + - * / on number literals
    (`2.0 / 3.0`, `(3 + 5 + 7, 3 * 5 * 7)`). Nothing that could run long: no `**`, no sequences
    repeated, no names."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONVERSIONS \
            and len(node.args) == 1 and not node.keywords:
        return CONVERSIONS[node.func.id](ast.literal_eval(node.args[0]))
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [expected_value(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        left, right = expected_value(node.left), expected_value(node.right)
        if not all(type(side) in (int, float, complex) for side in (left, right)):
            raise ValueError("arithmetic on numbers only")
        return ARITHMETIC[type(node.op)](left, right)
    return ast.literal_eval(node)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
