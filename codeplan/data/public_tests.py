"""Public example tests taken from a problem statement: the only tests plan selection may see.

Rules (docs/data.md lists them): stdin problems take the Input/Output example blocks of the
statement (APPS/Codeforces "-----Examples-----", AtCoder "-----Sample Input-----", plain
"Example / Input: / Output:"); call problems take examples written as calls: a doctest
(`>>> f(x)` then the expected line), `f(x) == y` / `f(x) ==> y` / `f(x) -> y`, or LeetCode's
"Input: a = 1, b = [2]" / "Output: 3". Values are parsed with `ast.literal_eval` only; anything
that does not parse is skipped, never guessed.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from codeplan.problems import TestCase

# A header line such as "Input", "Sample Input 2", "-----Sample Output-----", "Example input:".
_HEADER = re.compile(r"^\s*-*\s*(?:(?:sample|example)s?\s+)?(input|output)s?\s*(?:#?\d+)?\s*:?\s*-*\s*$", re.I)
_SECTION = re.compile(r"^\s*-{3,}\s*([^-].*?)\s*-{3,}\s*$")
_EXAMPLES_SECTION = re.compile(r"^(?:sample|example)s?(?:\s+(?:tests?|cases?|\d+))?$", re.I)
_INLINE = re.compile(r"^\s*(input|output)\s*:\s*(\S.*?)\s*$", re.I)


def stdin_examples(statement: str) -> list[TestCase]:
    """Input/Output blocks of a stdin problem's statement, paired in order."""
    lines = statement.replace("\r\n", "\n").split("\n")
    tests: list[TestCase] = []
    pending_input: str | None = None
    # Bare "Input"/"Output" lines count only inside an examples section: before it, "-----Input-----"
    # sections describe the input format. Headers naming a sample/example count anywhere.
    in_examples = False
    i = 0
    while i < len(lines):
        header = _HEADER.match(lines[i])
        if header is None:
            title = _section_title(lines[i])
            if title is not None:
                in_examples = bool(_EXAMPLES_SECTION.match(title))
            i += 1
            continue
        if not (in_examples or re.search(r"sample|example", lines[i], re.I)):
            i += 1
            continue
        kind = header.group(1).lower()
        # The block runs to the next header or "-----Section-----" line.
        j = i + 1
        while j < len(lines) and not _HEADER.match(lines[j]) and not _ends_block(lines[j]):
            j += 1
        block = lines[i + 1:j]
        if kind == "input":
            pending_input = _trim(block)
        elif pending_input is not None:
            # A "-----Sample Output-----" section (AtCoder) ends at its first blank line, since prose
            # follows it; a bare "Output" block (Codeforces) runs to the next header and may hold blank lines.
            output = _trim(_until_blank(block) if _SECTION.match(lines[i]) else block)
            if pending_input and output:
                tests.append(TestCase(input=pending_input + "\n", output=output + "\n"))
            pending_input = None
        i = j
    return _dedupe(tests)


def _section_title(line: str) -> str | None:
    """"-----Examples-----" -> "Examples"; a bare "Example" / "Examples:" / "Example 1:" line too."""
    section = _SECTION.match(line)
    if section:
        return section.group(1)
    bare = re.match(r"^\s*((?:sample|example)s?(?:\s+(?:tests?|cases?|\d+))?)\s*:?\s*$", line, re.I)
    return bare.group(1) if bare else None


def _ends_block(line: str) -> bool:
    """A new "-----Section-----" or an "Explanation:"/"Note:" line ends an example block."""
    section = _SECTION.match(line)
    if section is not None and not _HEADER.match(line):
        return True
    return re.match(r"^\s*(?:explanation|notes?)\b\s*:", line, re.I) is not None


def _trim(block: list[str]) -> str:
    while block and not block[0].strip():
        block = block[1:]
    while block and not block[-1].strip():
        block = block[:-1]
    return "\n".join(line.rstrip() for line in block)


def _until_blank(block: list[str]) -> list[str]:
    started = False
    out: list[str] = []
    for line in block:
        if not line.strip():
            if started:
                break
            continue
        started = True
        out.append(line)
    return out


def _dedupe(tests: list[TestCase]) -> list[TestCase]:
    seen: set[str] = set()
    unique = []
    for test in tests:
        key = json.dumps([test.input, test.output], sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(test)
    return unique


# ---- call-based examples -----------------------------------------------------------------------


@dataclass
class CallExample:
    """One example call found in a statement, in source form and as parsed values."""

    args_source: str
    args: list[Any]
    output_source: str
    output: Any


def literal(source: str) -> tuple[bool, Any]:
    """(ok, value) for a Python literal, also accepting JSON's true/false/null; never evaluates code."""
    source = source.strip().rstrip(";").strip()
    if not source:
        return False, None
    try:
        return True, ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return True, json.loads(source)
    except (json.JSONDecodeError, RecursionError):
        return False, None


def call_args(source: str) -> tuple[bool, list[Any]]:
    """Parse "1, [2, 3]" or "nums = [1], k = 2" (LeetCode style) into positional argument values."""
    try:
        tree = ast.parse(f"_f({source.strip()})", mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        # LeetCode writes JSON literals (true, null) that Python does not parse: try a JSON list.
        ok, value = literal(f"[{source}]")
        return (ok and isinstance(value, list)), value if ok else []
    call = tree.body
    if not isinstance(call, ast.Call) or any(isinstance(arg, ast.Starred) for arg in call.args):
        return False, []
    nodes = list(call.args) + [keyword.value for keyword in call.keywords if keyword.arg is not None]
    if len(nodes) != len(call.args) + len(call.keywords):
        return False, []
    values = []
    for node in nodes:
        try:
            values.append(ast.literal_eval(node))
        except (ValueError, SyntaxError, TypeError, RecursionError):
            return False, []
    return True, values


_ARROW = r"(?:#\s*)?(?:==>|=>|==|->|➞|→|➡|should\s+(?:return|equal|be)|returns?)"
# HumanEval's "For lst = [1, 2] the output should be 3" (also "..., the result should be ...").
_FOR_SHOULD_BE = re.compile(r"^\s*for\s+(.+?),?\s+the\s+(?:output|result)\s+should\s+be\s+(.+?)\s*$", re.I)


def call_examples(text: str, entry_point: str) -> list[CallExample]:
    """Examples of calls to `entry_point` in a statement or docstring (see the module docstring)."""
    examples: list[CallExample] = []
    lines = text.replace("\r\n", "\n").split("\n")
    name = re.escape(entry_point)
    call_line = re.compile(rf"(?<![\w.])(?:[\w]+\.)?{name}\s*\((.*)\)\s*{_ARROW}\s*(.+?)\s*$")
    doctest = re.compile(rf"^\s*>>>\s*(?:[\w.]+\.)?{name}\s*\((.*)\)\s*$")
    for index, line in enumerate(lines):
        found = call_line.search(line)
        if found:
            _add(examples, found.group(1), _strip_comment(found.group(2)))
            continue
        found = doctest.match(line)
        if found and index + 1 < len(lines) and lines[index + 1].strip() and \
                not lines[index + 1].strip().startswith(">>>"):
            _add(examples, found.group(1), lines[index + 1].strip())
        found = _FOR_SHOULD_BE.match(line)
        if found:
            _add(examples, found.group(1), _strip_comment(found.group(2)))
    # LeetCode style: "Input: nums = [2,7], target = 9" then "Output: [0,1]".
    for index, line in enumerate(lines):
        found = _INLINE.match(line)
        if not found or found.group(1).lower() != "input":
            continue
        for follow in lines[index + 1:index + 3]:
            out = _INLINE.match(follow)
            if out and out.group(1).lower() == "output":
                _add(examples, found.group(2), out.group(2))
                break
    unique: list[CallExample] = []
    seen: set[str] = set()
    for example in examples:
        key = repr((example.args, example.output))
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def _strip_comment(source: str) -> str:
    # "f(1) => 2  # because ..." / "// ...": drop a trailing comment only when what is left parses.
    for marker in ("#", "//"):
        if marker in source:
            head = source.split(marker, 1)[0].strip()
            if literal(head)[0]:
                return head
    return source.strip().rstrip(".").strip() if not literal(source)[0] else source.strip()


def _add(examples: list[CallExample], args_source: str, output_source: str) -> None:
    ok_args, args = call_args(args_source)
    ok_out, output = literal(output_source)
    # Only values that JSON keeps as they are: sets, bytes or int dict keys would change on the way.
    if ok_args and ok_out and _jsonable(args) and _jsonable(output):
        # Stored as JSON will read them back (tuples become lists), so a reloaded problem equals this one.
        args, output = json.loads(json.dumps(args)), json.loads(json.dumps(output))
        examples.append(CallExample(args_source.strip(), args, output_source.strip(), output))


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def call_tests(text: str, entry_point: str) -> list[TestCase]:
    """Call-kind public tests: input = argument list, output = expected value."""
    return [TestCase(input=e.args, output=e.output) for e in call_examples(text, entry_point)]


def assert_tests(text: str, entry_point: str) -> list[TestCase]:
    """Assert-kind public tests: `assert f(args) == expected`, in the statement's own source form."""
    tests = []
    for example in call_examples(text, entry_point):
        args = example.args_source if _is_python_call(example.args_source) else \
            ", ".join(repr(value) for value in example.args)
        # The statement's own spelling when it is Python; repr of the parsed value otherwise (JSON's true).
        output = example.output_source if _is_python_literal(example.output_source) else repr(example.output)
        tests.append(TestCase(input=f"assert {entry_point}({args}) == {output}"))
    return tests


def _is_python_call(args_source: str) -> bool:
    try:
        call = ast.parse(f"f({args_source})", mode="eval").body
        return isinstance(call, ast.Call) and not call.keywords  # "x = 1" style names are not Python calls
    except (SyntaxError, ValueError, RecursionError):
        return False


def _is_python_literal(source: str) -> bool:
    try:
        ast.literal_eval(source)
        return True
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return False
