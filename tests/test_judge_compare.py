"""Comparison rules on cases of our own: APPS leniency, strict mode, call-based, evalplus floats."""

from __future__ import annotations

from codeplan.judge.compare import (apps_call_args, apps_call_equal, apps_stdin_equal, evalplus_equal,
                                    strict_call_equal, strict_stdin_equal)
from codeplan.judge.asserts import split_assert


def test_apps_stdin_whitespace_leniency():
    assert apps_stdin_equal("1 2 3\n", "1 2 3")
    assert apps_stdin_equal("  1\n 2  \n\n", "1\n2\n")
    assert apps_stdin_equal("1\n\n2\n", "1\n2")  # empty lines dropped
    assert not apps_stdin_equal("1 2 4\n", "1 2 3")


def test_apps_stdin_float_tolerance():
    assert apps_stdin_equal("0.3333333\n", "0.33333333333")
    assert apps_stdin_equal("1e3\n", "1000.0")
    assert not apps_stdin_equal("0.34\n", "0.3333333")


def test_apps_stdin_token_set_quirk_lets_reordered_output_pass():
    # The official harness compares lines as sets of tokens: order and repetition are ignored.
    assert apps_stdin_equal("3 2 1\n", "1 2 3")
    assert apps_stdin_equal("1 1 2\n", "2 1")
    assert apps_stdin_equal("b\na\n", "a\nb")
    assert apps_stdin_equal("0.3330001 2\n", "2 0.333")  # rounded to 3 decimals
    assert not strict_stdin_equal("3 2 1\n", "1 2 3")


def test_strict_stdin_only_forgives_trailing_whitespace():
    assert strict_stdin_equal("1 2\n3  \n\n", "1 2\n3")
    assert not strict_stdin_equal(" 1 2\n3\n", "1 2\n3")
    assert not strict_stdin_equal("1  2\n3\n", "1 2\n3")
    assert not strict_stdin_equal("1\n\n2\n", "1\n2")


def test_apps_call_comparison():
    assert apps_call_equal(3, [3])  # outputs wrapped in a one-element list
    assert apps_call_equal([1, 2], [[1, 2]])
    assert apps_call_equal((1, 2), [1, 2])  # tuples count as lists
    assert apps_call_equal([(1, 2), (3, 4)], [[[1, 2], [3, 4]]])
    assert apps_call_equal({1: "a"}, {"1": "a"})  # JSON turned int keys into strings
    assert not apps_call_equal(4, [3])
    assert not strict_call_equal(3, [3])
    assert strict_call_equal((1, 2), [1, 2])
    assert apps_call_args([{"1": 2}]) == [{1: 2}]
    assert apps_call_args([1, "x"]) == [1, "x"]


def test_evalplus_float_tolerance():
    assert evalplus_equal(0.1 + 0.2, 0.3, 0.0)  # floats: atol 1e-6 by default
    assert not evalplus_equal(10 ** 400, 1.5, 0.0)  # an int past float range is not close to a float
    assert evalplus_equal([10 ** 400, 0.1 + 0.2], [10 ** 400, 0.3], 1e-6)  # with a task atol
    assert not evalplus_equal(0.31, 0.3, 0.0)
    assert evalplus_equal([1.0000001, 2.0], [1.0, 2.0], 0.0)
    assert not evalplus_equal(3, 4, 0.0)
    assert evalplus_equal(3.0004, 3.0, 1e-3)  # task atol
    assert not evalplus_equal([1.0], [1.0, 2.0], 1e-3)
    assert evalplus_equal("abc", "abc", 0.0)


def test_split_assert_hides_the_expected_value():
    assert split_assert("assert f(1, 2) == [3, 4]") == ("f(1, 2)", [3, 4])
    # Truth assertions: the same code either way, the wanted truth value stays in the judge.
    assert split_assert("assert f([1, 2], 'a')") == ("not not (f([1, 2], 'a'))", True)
    assert split_assert("assert not f(3)") == ("not not (f(3))", False)
    assert split_assert("assert not f(g(3))") is None
    # Expected sides the judge computes itself; a literal assertion message is ignored.
    assert split_assert("assert tuple(f([3, 1])) == tuple([1, 3])") == ("tuple(f([3, 1]))", (1, 3))
    assert split_assert("assert f(7) == (3 + 5 + 7, 3 * 5 * 7)") == ("f(7)", (15, 105))
    assert split_assert("assert f(3) == 2.0 / 3.0") == ("f(3)", 2.0 / 3.0)
    assert split_assert("assert f([-1, 4]) == -1,-6") == ("f([-1, 4])", -1)
    for unsafe in ("assert f(1) == 2 ** 10 ** 10", "assert f(1) == 'a' * 10 ** 9", "assert f(1) == 1 / 0",
                   "assert f(1) == len('ab')", "assert f(1) == 2, message"):
        assert split_assert(unsafe) is None, unsafe
    assert split_assert("assert (1, 2) == g(x)") == ("g(x)", (1, 2))
    assert split_assert("assert math.isclose(f(1), 2.0)") is None
    assert split_assert("assert f(1) == y") is None
    assert split_assert("assert f(1) == 2, 'message'") == ("f(1)", 2)
