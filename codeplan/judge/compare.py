"""Output comparison: APPS-compatible leniency (default), strict mode, and evalplus-style floats.

APPS stdin rules, as the official harness (hendrycks/apps eval/testing_util.py) behaves; our own
code, checked against cases of our own in tests/test_judge_compare.py. A test passes when any of:
 1. the whole output equals the expected text after stripping both ends, or after also stripping
    every line;
 2. the output lines equal the expected lines (expected: split on newlines, empty lines dropped,
    each stripped; output lines unstripped, first as they are, then with empty lines dropped);
 3. every line on both sides is one number and the two number lists are close
    (|a-b| <= 1e-8 + 1e-5*|b|, numpy.allclose's rule);
 4. the *sets* of lines, each line taken as a *set* of whitespace-separated tokens, are equal
    (order and repetition ignored: this is the quirk that lets some wrong outputs pass), or equal
    after rounding every token to 3 decimals when all tokens are numbers.
Strict mode: the output equals the expected text up to trailing whitespace on each line and
trailing blank lines.

APPS call-based rules: a returned tuple counts as a list; the value equals the expected one, or the
expected one's first element when it is a non-empty list (the data wraps outputs in a list), or, for
a list of tuples, the list of lists equals that first element. JSON turned integer dict keys into
strings, so expected dicts (and a dict first argument) get integer keys back where possible.
"""

from __future__ import annotations

import math
from typing import Any

REL_TOL, ABS_TOL = 1e-5, 1e-8  # numpy.allclose defaults, which the APPS harness uses


def _close(a: float, b: float, rtol: float = REL_TOL, atol: float = ABS_TOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _as_floats(items: list[str]) -> list[float] | None:
    try:
        return [float(item) for item in items]
    except (TypeError, ValueError):
        return None


def apps_stdin_equal(output: str, expected: Any) -> bool:
    """APPS-compatible comparison of a program's stdout with the expected text (or list of lines)."""
    if isinstance(expected, list):
        expected = "\n".join(str(item) for item in expected)
    expected = str(expected)
    lines = output.splitlines()
    # Rule 1: whole text, stripped; or every line stripped.
    target = expected.strip()
    if "\n".join(lines).strip() == target or "\n".join(line.strip() for line in lines).strip() == target:
        return True
    if lines == [expected]:
        return True
    # Rule 2: line lists.
    expected_lines = [line.strip() for line in expected.split("\n") if line]
    if lines == expected_lines:
        return True
    nonempty = [line for line in lines if line]
    if nonempty == expected_lines:
        return True
    # Rule 3: one number a line, close.
    got, want = _as_floats(nonempty), _as_floats(expected_lines)
    if got is not None and want is not None and len(got) == len(want) and all(map(_close, got, want)):
        return True
    # Rule 4: set of lines, each a set of tokens (optionally rounded numbers).
    want_sets = {frozenset(line.split()) for line in expected_lines}
    got_sets = {frozenset(tokens) for tokens in (line.split() for line in nonempty) if tokens}
    if got_sets == want_sets:
        return True
    try:
        rounded_got = {frozenset(round(float(t), 3) for t in s) for s in got_sets}
        rounded_want = {frozenset(round(float(t), 3) for t in s) for s in want_sets}
    except ValueError:
        return False
    return rounded_got == rounded_want


def strict_stdin_equal(output: str, expected: Any) -> bool:
    """Exact output, ignoring only trailing spaces on lines and trailing blank lines."""
    if isinstance(expected, list):
        expected = "\n".join(str(item) for item in expected)

    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in str(text).replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(output) == norm(expected)


def _int_keys(value: Any) -> Any:
    """{"1": x} -> {1: x} when every key is an integer literal (JSON lost the key type)."""
    if isinstance(value, dict):
        try:
            return {int(key): item for key, item in value.items()}
        except (TypeError, ValueError):
            return value
    return value


def apps_call_args(args: Any) -> list:
    """The arguments as the APPS harness passes them (a dict first argument gets integer keys)."""
    args = list(args) if isinstance(args, (list, tuple)) else [args]
    if args and isinstance(args[0], dict):
        try:
            args = [{int(key): item for key, item in args[0].items()}]
        except (TypeError, ValueError):
            pass
    return args


def apps_call_equal(output: Any, expected: Any) -> bool:
    """APPS-compatible comparison of a function's return value with the expected output."""
    if isinstance(expected, dict):
        expected = [_int_keys(expected)]
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        expected = [_int_keys(expected[0])]
    if isinstance(output, tuple):
        output = list(output)
    if _safe_eq(output, expected):
        return True
    if isinstance(expected, list) and expected and _safe_eq(output, expected[0]):
        return True
    if isinstance(output, list) and output and isinstance(output[0], tuple) and isinstance(expected, list) and expected:
        return _safe_eq([list(item) if isinstance(item, tuple) else item for item in output], expected[0])
    return False


def strict_call_equal(output: Any, expected: Any) -> bool:
    """Equality with the expected value only (tuples still count as lists: JSON has no tuples)."""
    return _safe_eq(_lists(output), _lists(expected))


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    return value


def _safe_eq(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - comparisons of odd values (e.g. deep recursion)
        return False


def is_floats(value: Any) -> bool:
    """A float, or a non-empty list/tuple of floats (evalplus applies tolerance only to these)."""
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(item, float) for item in value)


def evalplus_equal(output: Any, expected: Any, atol: float) -> bool:
    """HumanEval+/MBPP+: equal to the reference output, or numerically close (|o-e| <= atol + 1e-7|e|)
    where the task has an atol, or where the expected value is a float / list of floats (atol 1e-6)."""
    if _safe_eq(output, expected):
        return True
    tolerance = atol or (1e-6 if is_floats(expected) else 0.0)
    if not tolerance:
        return False
    return _numbers_close(output, expected, tolerance)


def _numbers_close(output: Any, expected: Any, tolerance: float) -> bool:
    """Same shape, numbers close (bools and ints count as numbers, as numpy's comparison does)."""
    if isinstance(expected, (list, tuple)):
        return (isinstance(output, (list, tuple)) and len(output) == len(expected)
                and all(_numbers_close(o, e, tolerance) for o, e in zip(output, expected)))
    if isinstance(expected, (int, float)) and isinstance(output, (int, float)):
        try:
            return _close(float(output), float(expected), rtol=1e-7, atol=tolerance)
        except OverflowError:  # an int past float range: only an equal one is close (checked above)
            return output == expected
    return _safe_eq(output, expected)
