"""Loaders, format detection, selection, public-test extraction and the bundled sample set."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from codeplan.config import DataConfig
from codeplan.data import (SAMPLE_PLANS, SAMPLE_PROBLEMS, detect_format, load_folder_plans, load_problems)
from codeplan.data.humaneval import split_check
from codeplan.data.public_tests import assert_tests, call_tests, stdin_examples
from codeplan.errors import InputError, SetupError
from codeplan.problems import Problem, TestCase, read_problems, write_problems


def write_jsonl(path: Path, records: list[dict], *, gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load(path, **kw) -> list[Problem]:
    return load_problems(DataConfig(path=str(path), **kw))


# ---- fixtures in each benchmark's own format ----------------------------------------------------

APPS_QUESTION = """Print the sum of two numbers.

-----Input-----
Two integers a and b.

-----Output-----
Their sum.

-----Examples-----
Input
1 2

Output
3

Input
5 5

Output
10

-----Note-----
Easy.
"""


def apps_record(pid: int = 7, **over) -> dict:
    record = {"problem_id": pid, "question": APPS_QUESTION,
              "solutions": json.dumps(["a, b = map(int, input().split())\nprint(a + b)\n"]),
              "input_output": json.dumps({"inputs": ["1 2\n", "4 4\n"], "outputs": ["3\n", "8\n"]}),
              "difficulty": "interview", "url": "https://example.org/7", "starter_code": ""}
    record.update(over)
    return record


def make_apps_folder(root: Path) -> Path:
    train = root / "train" / "0003"
    train.mkdir(parents=True)
    (train / "question.txt").write_text(APPS_QUESTION)
    (train / "solutions.json").write_text(json.dumps(["print(sum(map(int, input().split())))", "print(3)"]))
    (train / "input_output.json").write_text(json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}))
    (train / "metadata.json").write_text(json.dumps({"difficulty": "introductory", "url": "u"}))
    (train / "plans.json").write_text(json.dumps(["1. Read.\n2. Add.", "1. Print 3."]))
    call = root / "train" / "0004"
    call.mkdir()
    (call / "question.txt").write_text("Return double.\n\nExample: double(2) ==> 4\n")
    (call / "solutions.json").write_text(json.dumps(["def double(x):\n    return 2 * x\n"]))
    (call / "input_output.json").write_text(json.dumps({"fn_name": "double", "inputs": [[1], [3]], "outputs": [[2], [6]]}))
    (call / "metadata.json").write_text(json.dumps({"difficulty": "introductory"}))
    (call / "starter_code.py").write_text("def double(x):\n\t")
    test = root / "test" / "0003"
    test.mkdir(parents=True)
    (test / "question.txt").write_text("No examples in this statement.")
    (test / "solutions.json").write_text(json.dumps(["print(1)"]))
    (test / "input_output.json").write_text(json.dumps({"inputs": ["\n"], "outputs": ["1\n"]}))
    (test / "metadata.json").write_text(json.dumps({"difficulty": "competition"}))
    (test / "example_input_output.json").write_text(json.dumps({"inputs": ["x\n"], "outputs": ["1\n"]}))
    return root


MBPP = [{"text": "Write a function to add two numbers.", "code": "def add(a, b):\r\n    return a + b",
         "task_id": tid, "test_setup_code": "", "test_list": [f"assert add({tid}, 1) == {tid + 1}",
                                                               "assert add(0, 0) == 0", "assert add(-1, 1) == 0"],
         "challenge_test_list": []} for tid in (5, 11, 600, 601, 974)]

HE_PROMPT = '''def inc(x: int) -> int:
    """Add one.
    >>> inc(1)
    2
    >>> inc(-1)
    0
    """
'''
HUMANEVAL = [{"task_id": "HumanEval/0", "prompt": HE_PROMPT, "canonical_solution": "    return x + 1\n",
              "test": "def check(candidate):\n    assert candidate(3) == 4\n", "entry_point": "inc"}]
HEPLUS = [{**HUMANEVAL[0], "contract": "\n    assert isinstance(x, int)\n", "base_input": [[1], [2]],
           "plus_input": [[10**9]], "atol": 0}]
MBPPPLUS = [{"task_id": "Mbpp/2", "prompt": "'''\nWrite a function to add one.\n'''", "entry_point": "inc",
             "canonical_solution": "\ndef inc(x):\n    return x + 1\n", "base_input": [[1], [5]], "plus_input": {},
             "atol": 1e-6, "contract": "", "assertion": "\nassert inc(1) == 2\nassert inc(5) == 6\n"}]


# ---- the sample set ------------------------------------------------------------------------------

def test_sample_alias_loads_all_three_kinds_with_train_and_test_splits():
    problems = load("sample")
    assert 25 <= len(problems) <= 40
    kinds = {p.kind for p in problems}
    assert kinds == {"stdin", "call", "assert"}
    assert {p.split for p in problems} == {"train", "test"}
    assert len(load("sample", split="test")) < len(load("sample", split="train"))
    for p in problems:
        assert p.id.startswith("sample-") and p.source == "codeplan-sample"
        assert p.solutions and p.public_tests and len(p.hidden_tests) >= 3
        hidden = {json.dumps(t.model_dump(), sort_keys=True) for t in p.hidden_tests}
        assert not any(json.dumps(t.model_dump(), sort_keys=True) in hidden for t in p.public_tests), p.id
    solution_classes = [p for p in problems if p.kind == "call" and "class Solution" in p.solutions[0]]
    assert len(solution_classes) >= 2


def test_sample_public_tests_are_the_statement_examples():
    for p in load("sample"):
        if p.kind == "stdin":
            assert stdin_examples(p.statement) == p.public_tests, p.id
        elif p.kind == "call":
            assert call_tests(p.statement, p.entry_point) == p.public_tests, p.id


def test_sample_plans_cover_every_problem_once():
    plans = [json.loads(line) for line in SAMPLE_PLANS.read_text().splitlines()]
    ids = [p.id for p in read_problems(SAMPLE_PROBLEMS)]
    assert sorted(plan["problem_id"] for plan in plans) == sorted(ids)
    for plan in plans:
        assert plan["solution_index"] == 0 and plan["direction"] == "backward"
        assert plan["plan"].startswith("1. ") and "\n2. " in plan["plan"]


# ---- canonical format ------------------------------------------------------------------------------

def test_canonical_round_trip(tmp_path):
    problems = load("sample")
    out = tmp_path / "copy.jsonl"
    write_problems(out, problems)
    assert read_problems(out) == problems
    assert load(out) == problems
    assert detect_format(out) == "canonical"


def test_convert_then_load_gives_the_same_problems(tmp_path):
    from codeplan.data import convert_problems

    src = write_jsonl(tmp_path / "mbpp.jsonl", MBPP)
    out = tmp_path / "canonical.jsonl"
    convert_problems(DataConfig(path=str(src)), out)
    assert load(out) == load(src)


def test_canonical_checks_test_shapes(tmp_path):
    record = read_problems(SAMPLE_PROBLEMS)[0].to_record()
    record["hidden_tests"][1]["input"] = 5  # a stdin test must carry text
    path = write_jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(InputError) as err:
        load(path)
    assert err.value.line == 1 and err.value.field == "hidden_tests.1.input"


# ---- APPS ---------------------------------------------------------------------------------------------

def test_apps_jsonl(tmp_path):
    call_io = json.dumps({"fn_name": "double", "inputs": [[1], [[2, 3]]], "outputs": [[2], [[4, 6]]]})
    path = write_jsonl(tmp_path / "apps.jsonl", [apps_record(), apps_record(8, input_output=call_io,
                                                                           starter_code="def double(x):\n")])
    assert detect_format(path) == "apps-jsonl"
    stdin, call = load(path)
    assert stdin.id == "7" and stdin.kind == "stdin" and stdin.difficulty == "interview" and stdin.split is None
    assert [t.input for t in stdin.hidden_tests] == ["1 2\n", "4 4\n"]
    assert stdin.public_tests == [TestCase(input="1 2\n", output="3\n"), TestCase(input="5 5\n", output="10\n")]
    assert stdin.metadata["url"] == "https://example.org/7"
    # Call-based tests stay exactly as APPS stores them (outputs wrapped in a list).
    assert call.kind == "call" and call.entry_point == "double" and call.starter_code == "def double(x):\n"
    assert call.hidden_tests == [TestCase(input=[1], output=[2]), TestCase(input=[[2, 3]], output=[[4, 6]])]


def test_apps_jsonl_split_is_unknown_unless_a_column_says_it(tmp_path):
    path = write_jsonl(tmp_path / "apps.jsonl", [apps_record()])
    with pytest.raises(InputError, match="split"):
        load(path, split="train")
    path = write_jsonl(tmp_path / "apps2.jsonl", [apps_record(1, split="train"), apps_record(2, split="test")])
    assert [p.id for p in load(path, split="test")] == ["2"]


def test_apps_folder_layout_and_plans(tmp_path):
    root = make_apps_folder(tmp_path / "apps")
    assert detect_format(root) == "apps-folder"
    train = load(root / "train")
    assert [p.id for p in train] == ["0003", "0004"] and {p.split for p in train} == {"train"}
    first, call = train
    assert first.difficulty == "introductory" and len(first.solutions) == 2
    assert first.public_tests[0] == TestCase(input="1 2\n", output="3\n")  # from the statement
    assert call.kind == "call" and call.starter_code == "def double(x):\n\t"
    assert call.hidden_tests[0] == TestCase(input=[1], output=[2])
    assert call.public_tests == [TestCase(input=[2], output=4)]  # "double(2) ==> 4" in the statement
    test = load(root / "test")
    assert test[0].public_tests == [TestCase(input="x\n", output="1\n")]  # example_input_output.json wins
    # The parent folder: both splits, ids made unique by the split name.
    both = load(root)
    assert [p.id for p in both] == ["train/0003", "train/0004", "test/0003"]
    assert [p.id for p in load(root, split="test")] == ["test/0003"]
    assert [p.id for p in load(root / "train" / "0004")] == ["0004"]
    plans = load_folder_plans(root / "train")
    assert plans == [
        {"problem_id": "0003", "solution_index": 0, "plan": "1. Read.\n2. Add.", "direction": "backward",
         "teacher": "gpt-3.5-turbo (CodePLAN release)"},
        {"problem_id": "0003", "solution_index": 1, "plan": "1. Print 3.", "direction": "backward",
         "teacher": "gpt-3.5-turbo (CodePLAN release)"}]
    assert {p["problem_id"] for p in load_folder_plans(root)} == {"train/0003"}


def test_apps_folder_errors_name_the_folder_and_file(tmp_path):
    root = make_apps_folder(tmp_path / "apps")
    (root / "train" / "0003" / "input_output.json").write_text(json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]}))
    with pytest.raises(InputError) as err:
        load(root / "train")
    assert "0003" in str(err.value) and err.value.field == "input_output.outputs"
    problems = load(root / "train", skip_invalid=True)
    assert [p.id for p in problems] == ["0004"]


# ---- MBPP, HumanEval, evalplus -----------------------------------------------------------------------------

def test_mbpp_splits_and_tests(tmp_path):
    path = write_jsonl(tmp_path / "mbpp.jsonl", MBPP)
    assert detect_format(path) == "mbpp"
    problems = load(path)
    assert [p.split for p in problems] == ["prompt", "test", "validation", "train", "train"]
    p = problems[1]
    assert p.id == "11" and p.kind == "assert" and p.entry_point == "add" and p.source == "mbpp"
    assert p.public_tests == [TestCase(input="assert add(11, 1) == 12")]
    assert p.hidden_tests[0] == p.public_tests[0] and len(p.hidden_tests) == 3  # documented MBPP practice
    assert "assert add(11, 1) == 12" in p.statement and "\r" not in p.solutions[0]
    assert [q.id for q in load(path, split="train", limit=1)] == ["601"]


def test_humaneval(tmp_path):
    path = write_jsonl(tmp_path / "he.jsonl.gz", HUMANEVAL, gz=True)
    assert detect_format(path) == "humaneval"
    (p,) = load(path)
    assert p.id == "HumanEval/0" and p.kind == "assert" and p.starter_code == HE_PROMPT
    assert p.solutions == [HE_PROMPT + "    return x + 1\n"]
    assert p.public_tests == [TestCase(input="assert inc(1) == 2"), TestCase(input="assert inc(-1) == 0")]
    # check()'s one assertion, calling the entry point by name (so the judge can split it).
    assert p.hidden_tests == [TestCase(input="assert inc(3) == 4")] and p.test_setup == ""
    assert p.statement.startswith("Add one.") and "def inc" not in p.statement


HE_CHECK = '''
import math

METADATA = {"author": "jt"}


def check(candidate):
    """Docstring."""
    import string
    digits = string.digits
    def near(a, b):
        return math.isclose(a, b)
    print
    assert candidate(1) == 2, "This prints if this assert fails 1"
    assert True, "nothing to test"
    assert near(candidate(0.5), 1.5)
    assert candidate(int(digits[9])) == 10
    assert not candidate(-1)
'''


def test_humaneval_check_splits_into_one_test_per_assertion():
    setup, tests = split_check(HE_CHECK, "inc")
    assert tests == ["assert inc(1) == 2", "assert near(inc(0.5), 1.5)", "assert inc(int(digits[9])) == 10",
                     "assert not inc(-1)"]
    # The module's code and what check() runs before its first assertion, none of its assertions.
    assert setup.splitlines()[:3] == ["import math", "METADATA = {'author': 'jt'}", "import string"]
    assert "digits = string.digits" in setup and "def near(a, b):" in setup and "assert" not in setup
    assert "candidate" not in setup + "".join(tests)
    namespace: dict = {}
    exec("def inc(x):\n    return x + 1\n" + setup + "\n".join(tests), namespace)  # they hold for a right program


@pytest.mark.parametrize("body", [
    "for x in range(3):\n        assert candidate(x) == x + 1",  # a loop
    "assert candidate(1) == 2\n    lst = [1, 2]\n    assert candidate(lst[0]) == 2",  # assigned between asserts
    "lst = [1]\n    assert candidate(lst) == [2]\n    assert lst == [1]",  # a call may mutate it for the next
    "assert (y := candidate(1)) == 2\n    assert y == 2",  # walrus binds for later asserts
    "x = candidate(1)\n    assert x == 2",  # the program would run once per test in the setup
    "assert candidate(1) == 2\n    import inc",  # rebinds the entry point
    "try:\n        assert candidate(1) == 2\n    except ValueError:\n        pass",
    "assert True",  # nothing left to test
    "yield\n    assert candidate(1) == 99",  # a generator: the benchmark never ran this assert
])
def test_humaneval_check_that_does_not_decompose_stays_whole(tmp_path, body):
    test = f"def check(candidate):\n    {body}\n"
    assert split_check(test, "inc") is None
    path = write_jsonl(tmp_path / "he.jsonl", [{**HUMANEVAL[0], "test": test}])
    (p,) = load(path)
    assert p.hidden_tests == [TestCase(input=f"{test.rstrip()}\n\ncheck(inc)\n")] and p.test_setup == ""


def test_humanevalplus_and_mbppplus(tmp_path):
    he = write_jsonl(tmp_path / "HumanEvalPlus.jsonl.gz", HEPLUS, gz=True)
    assert detect_format(he) == "evalplus"
    (p,) = load(he)
    assert p.kind == "call" and p.outputs_from_solution and p.source == "humanevalplus"
    assert p.hidden_tests == [TestCase(input=[1]), TestCase(input=[2]), TestCase(input=[10**9])]
    assert p.public_tests == [TestCase(input=[1], output=2), TestCase(input=[-1], output=0)]
    assert p.solutions == [HE_PROMPT + "    return x + 1\n"] and "contract" in p.metadata
    mb = write_jsonl(tmp_path / "MbppPlus.jsonl", MBPPPLUS)
    (q,) = load(mb)
    assert q.id == "Mbpp/2" and q.source == "mbppplus" and q.atol == 1e-6
    assert q.solutions == ["def inc(x):\n    return x + 1\n"] and q.starter_code == ""
    assert q.public_tests == [TestCase(input=[1], output=2)]  # first assertion only
    assert len(q.hidden_tests) == 2 and "assert inc(1) == 2" in q.statement


def test_humaneval_alias_reads_the_packaged_file():
    problems = load("humaneval", limit=3)
    assert [p.id for p in problems] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_forced_format_and_unknown_format(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(InputError, match="cannot detect"):
        load(path)
    with pytest.raises(InputError) as err:
        load(path, format="nonsense")
    assert err.value.field == "format"
    # Forcing a format reads the file with that loader, whose errors name the missing field.
    with pytest.raises(InputError) as err:
        load(path, format="mbpp")
    assert err.value.line == 1 and err.value.field == "task_id"


def test_selection_difficulty_and_limit(tmp_path):
    path = write_jsonl(tmp_path / "apps.jsonl", [apps_record(1, difficulty="interview"),
                                                 apps_record(2, difficulty="competition"),
                                                 apps_record(3, difficulty="introductory")])
    assert [p.id for p in load(path, difficulty=["competition", "introductory"])] == ["2", "3"]
    assert [p.id for p in load(path, limit=2)] == ["1", "2"]


def test_hub_fails_fast_when_offline(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(SetupError, match="hub"):
        load("hub:codeparrot/apps", split="test")
    assert time.monotonic() - start < 20


# ---- public tests from statements --------------------------------------------------------------------------

def test_stdin_examples_formats():
    atcoder = ("Find it.\n\n-----Input-----\nN\n\n-----Sample Input-----\n3\n1 2\n\n-----Sample Output-----\nYes\n2\n\n"
               "Vertex 2 is the answer.\nInput\nnot an example\n")
    assert stdin_examples(atcoder) == [TestCase(input="3\n1 2\n", output="Yes\n2\n")]
    plain = "Do it.\n\nExample\nInput:\n4\nOutput:\neven\nExplanation: 4 is even.\n"
    assert stdin_examples(plain) == [TestCase(input="4\n", output="even\n")]
    numbered = "Sample Input 1\n1\nSample Output 1\n2\nSample Input 2\n5\nSample Output 2\n6\n"
    assert [t.output for t in stdin_examples(numbered)] == ["2\n", "6\n"]
    codeforces_blank = "-----Example-----\nInput\n2\n1\n2\n\nOutput\n1\n\n2 3\n\n-----Note-----\nSee.\n"
    assert stdin_examples(codeforces_blank) == [TestCase(input="2\n1\n2\n", output="1\n\n2 3\n")]
    # Format sections describe the input; without examples nothing is extracted.
    assert stdin_examples("-----Input-----\nOne integer.\n\n-----Output-----\nIts square.\n") == []


def test_call_examples_formats():
    leetcode = "Example 1:\nInput: nums = [2,7,11,15], target = 9\nOutput: [0,1]\nExplanation: 2 + 7 = 9.\n"
    assert call_tests(leetcode, "twoSum") == [TestCase(input=[[2, 7, 11, 15], 9], output=[0, 1])]
    json_literals = "Input: s = \"()\"\nOutput: true\n"
    assert call_tests(json_literals, "isValid") == [TestCase(input=["()"], output=True)]
    codewars = "solve('abc') == 3\nsolve(\"x\") ==> 1  # one letter\nsolve(x) => 5\nsolve(7)   # returns \"db\"\n"
    assert call_tests(codewars, "solve") == [TestCase(input=["abc"], output=3), TestCase(input=["x"], output=1),
                                             TestCase(input=[7], output="db")]
    humaneval_for = "For lst = [1,2] the output should be 3\nFor s = \"ab\", c = \"a\", the result should be ('b',False)\n"
    assert call_tests(humaneval_for, "f") == [TestCase(input=[[1, 2]], output=3), TestCase(input=["ab", "a"], output=["b", False])]
    # A definition such as "tri(1) = 3" is not an example.
    assert call_tests("tri(1) = 3\ntri(n) = 1 + n / 2", "tri") == []
    # Unparseable values are skipped, never guessed; sets would not survive JSON.
    assert call_tests("f(a) == b\nf({1, 2}) == 3\nf(1) == some_var", "f") == []


def test_doctest_asserts_skip_non_literal_outputs():
    prompt = '    >>> f([1, 2])\n    [2, 1]\n    >>> f("")\n    \'\'\n    >>> f(x)\n    3\n    >>> g(1)\n    2\n'
    assert assert_tests(prompt, "f") == [TestCase(input="assert f([1, 2]) == [2, 1]"),
                                         TestCase(input="assert f(\"\") == ''")]
    # JSON spellings are turned into Python, keyword-style arguments into positional ones.
    assert assert_tests("f(8, 2) => true\nFor n = 5 the output should be \"101\"", "f") == [
        TestCase(input="assert f(8, 2) == True"), TestCase(input='assert f(5) == "101"')]


def test_infinite_test_values_survive_the_canonical_file(tmp_path):
    """MBPP+ inputs hold inf and nan; the canonical file must not turn them into null."""
    import math

    record = {**MBPPPLUS[0], "plus_input": [[float("inf")], [float("nan")]]}
    (problem,) = load(write_jsonl(tmp_path / "MbppPlus.jsonl", [record]))
    out = tmp_path / "canonical.jsonl"
    write_problems(out, [problem])
    (again,) = read_problems(out)
    assert again.hidden_tests[2].input == [math.inf] and math.isnan(again.hidden_tests[3].input[0])


def test_sanitized_mbpp_columns(tmp_path):
    record = {"source_file": "x", "task_id": 602, "prompt": "Write a function to add.", "code": "def add(a, b):\n    return a + b",
              "test_imports": ["import math"], "test_list": ["assert add(1, 1) == 2", "assert add(0, 1) == 1"]}
    path = write_jsonl(tmp_path / "sanitized.jsonl", [record])
    assert detect_format(path) == "mbpp"
    (p,) = load(path)
    assert p.statement.startswith("Write a function to add.") and p.test_setup == "import math" and p.split == "train"


def test_difficulty_that_no_problem_has_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "apps.jsonl", [apps_record(1)])
    with pytest.raises(InputError) as err:
        load(path, difficulty=["easy"])
    assert err.value.field == "difficulty" and "interview" in str(err.value)


def test_hub_dataset_columns_pick_the_loader(monkeypatch):
    """hub: goes through datasets.load_dataset; here a local Dataset stands in for the hub."""
    import datasets

    rows = {"train": [apps_record(0, split=None)], "test": [apps_record(0, split=None), apps_record(1, split=None)]}
    for split in rows.values():
        for row in split:
            row.pop("split")
    calls = []

    def fake_load_dataset(name, split=None, **kwargs):
        calls.append((name, split))
        built = {s: datasets.Dataset.from_list(r) for s, r in rows.items()}
        return built[split] if split else datasets.DatasetDict(built)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    test = load("hub:someone/apps", split="test")
    assert calls[-1] == ("someone/apps", "test")
    assert [p.id for p in test] == ["0", "1"] and {p.split for p in test} == {"test"} and test[0].source == "apps"
    both = load("hub:someone/apps")
    assert [p.id for p in both] == ["train/0", "test/0", "test/1"]  # APPS numbers each split from 0


def mbppplus_record(entry: str, params: str, assertion: str, inputs: list, contract: str = "") -> dict:
    return {**MBPPPLUS[0], "task_id": f"Mbpp/{entry}", "entry_point": entry, "canonical_solution": f"def {entry}({params}):\n    return 0\n",
            "base_input": inputs, "assertion": assertion, "contract": contract}


def converted(problem: Problem) -> list[list]:
    from codeplan.judge.calibrate import evalplus_args

    return [evalplus_args(problem, test) for test in problem.hidden_tests]


def test_evalplus_tuples_come_back_where_the_examples_use_them(tmp_path):
    # JSON turns (2, 3) into [2, 3]; the task's own example call says which arrays were tuples.
    record = mbppplus_record("add_tup", "xs, tup", "assert add_tup([1], (2, 3)) == (1, 2, 3)", [[[1], [2, 3]]])
    (p,) = load(write_jsonl(tmp_path / "MbppPlus.jsonl", [record]))
    assert p.metadata["arg_types"] == [None, {"containers": ["tuple"]}]
    assert converted(p) == [[[1], (2, 3)]] and isinstance(converted(p)[0][0], list)
    assert p.public_tests == [TestCase(input=[[1], [2, 3]], output=[1, 2, 3])]


def test_evalplus_nested_tuples_lists_of_tuples_and_dict_values(tmp_path):
    records = [
        # tuples inside tuples: tuples all the way down, deeper than the example goes
        mbppplus_record("evens", "t", "assert evens((4, 5, (7, 6, (2, 4)))) == (4, (6, (2, 4)))",
                        [[[1, [2, [3, [4, [5]]]]]]]),
        # a list of pairs: only the pairs are tuples, and nothing below them
        mbppplus_record("pairs", "xs", "assert pairs([(3, 5), (1, 7)]) == 7", [[[[3, [5]], [1, 7]]]]),
        # a dict whose values are tuples; the keys stay strings
        mbppplus_record("heights", "d, h", "assert heights({'a': (6.2, 70)}, 6.0) == {}", [[{"a": [6.2, 70]}, 6.0]]),
        # a tuple of lists stays a tuple of lists
        mbppplus_record("lists", "t", "assert lists(([1, 2], [3])) == 2", [[[[1, 2], [3]]]]),
    ]
    deep, pairs, heights, lists = load(write_jsonl(tmp_path / "MbppPlus.jsonl", records))
    assert converted(deep) == [[(1, (2, (3, (4, (5,)))))]]
    assert converted(pairs) == [[[(3, [5]), (1, 7)]]]
    assert converted(heights) == [[{"a": (6.2, 70)}, 6.0]]
    assert converted(lists) == [[([1, 2], [3])]] and isinstance(converted(lists)[0][0][0], list)


def test_evalplus_numbers_written_as_strings_and_sets(tmp_path):
    contract = "\n    assert isinstance(a, (int, float))\n    assert isinstance(b, complex) or isinstance(b, float)\n"
    angle = mbppplus_record("angle", "a, b", "assert angle(0, 1j) == 1.57", [["0", "1j"], ["-1e-3", "(-0-2j)"]],
                            contract)
    polar = mbppplus_record("polar", "z", "assert polar(1) == (1.0, 0.0)", [[1], ["(1+2j)"]],
                            "\n    assert isinstance(z, (int, float, complex))\n")
    # a string argument that looks like a number is left alone when the contract asks for a str
    digits = mbppplus_record("digits", "s", "assert digits('12') == 3", [["12"]], "\n    assert isinstance(s, str)\n")
    empties = mbppplus_record("empties", "xs", "assert empties([{1, 2}, {}])", [[[[1, 2], []]]])
    angle, polar, digits, empties = load(write_jsonl(tmp_path / "MbppPlus.jsonl", [angle, polar, digits, empties]))
    assert angle.metadata["arg_types"] == [{"number": "float"}, {"number": "complex"}]
    assert converted(angle) == [[0.0, 1j], [-0.001, complex(0, -2)]]
    assert [type(v) for v in converted(angle)[0]] == [float, complex]
    assert converted(polar) == [[complex(1)], [complex(1, 2)]] and isinstance(converted(polar)[0][0], complex)
    assert "arg_types" not in digits.metadata and converted(digits) == [["12"]]
    assert converted(empties) == [[[{1, 2}, {}]]] and converted(empties)[0][0][1] == {}


def test_evalplus_contract_tuples_without_an_example(tmp_path):
    # HumanEval+ has no assertion field: the contract's isinstance(x, tuple) is the only word on it.
    record = {**HEPLUS[0], "contract": "\n    assert isinstance(x, tuple)\n", "base_input": [[[1, [2]]]], "plus_input": []}
    (p,) = load(write_jsonl(tmp_path / "HumanEvalPlus.jsonl", [record]))
    assert converted(p) == [[(1, [2])]]
    # canonical files written before arg_types carry tuple_args, still honoured
    old = p.model_copy(update={"metadata": {"tuple_args": [0]}})
    assert converted(old) == [[(1, [2])]]
