"""Answer cleaning (codeplan.sanitize): programs out of model answers, student and teacher plans."""

from __future__ import annotations

import pytest

from codeplan.sanitize import extract_code, student_plan, teacher_plan, truncate_at_stop


def test_truncate_at_stop_cuts_at_the_earliest_stop_string():
    assert truncate_at_stop("abc STOP def END", ("END", "STOP")) == ("abc ", True)
    assert truncate_at_stop("no marker", ("END",)) == ("no marker", False)
    assert truncate_at_stop("x", ("",)) == ("x", False)


@pytest.mark.parametrize("answer, expected", [
    ("```python\ndef f(x):\n    return x + 1\n```\nThis adds one.", "def f(x):\n    return x + 1\n"),
    ("Here is the code:\n```\nprint(1)\n```", "print(1)\n"),
    ("Sure! Here is my solution:\nn = int(input())\nprint(n * 2)\n", "n = int(input())\nprint(n * 2)\n"),
    ("n = int(input())\nprint(n)\n[GEN_CODE]\nQUESTION:\nmore junk", "n = int(input())\nprint(n)\n"),
    # Cut at max_tokens in the middle of a line: the unfinished line goes.
    ("a = int(input())\nprint(a)\nprint(a +", "a = int(input())\nprint(a)\n"),
    ("", ""),
])
def test_extract_code(answer, expected):
    assert extract_code(answer) == expected


def test_extract_code_keeps_unparsable_code_for_the_judge():
    assert extract_code("this is not ( python") == "this is not ( python\n"


def test_student_plan_stops_at_the_next_section():
    assert student_plan(" 1. Read n.\n2. Print n.\nANSWER:\nprint(n)") == "1. Read n.\n2. Print n."


def test_teacher_plan_strips_preamble_fences_and_chatter_and_renumbers_steps() -> None:
    text = ("Sure! Here is the step-by-step plan:\n```\nStep 1: Read n.\nStep 2: Read the list.\n"
            "Step 3: Print the sum.\n```\nLet me know if you need anything else!")
    assert teacher_plan(text) == ("1. Read n.\n2. Read the list.\n3. Print the sum.", "")


@pytest.mark.parametrize("text", [
    "1) Read n.\n2) Read the list.\n3) Print the sum.",
    "**Step 1:** Read n.\n**Step 2:** Read the list.\n**Step 3:** Print the sum.",
    "### Step 1\nRead n.\n### Step 2\nRead the list.\n### Step 3\nPrint the sum.",
    "- Read n.\n- Read the list.\n* Print the sum.",
    "Plan:\n\n1. Read n.\n2. Read the list.\n3. Print the sum.\n\nThis runs in O(n) time.",
    "Steps:\n1. Read n.\n2. Read the list.\n```python\nprint(sum(a))\n```\n3. Print the sum.",
])
def test_teacher_plan_accepts_the_usual_list_styles(text: str) -> None:
    assert teacher_plan(text) == ("1. Read n.\n2. Read the list.\n3. Print the sum.", "")


def test_teacher_plan_folds_sub_items_and_wrapped_lines_into_their_step() -> None:
    text = "1. Read the input:\n   - n on the first line\n   - the list on the second\n2. Print the\n   largest value."
    assert teacher_plan(text)[0] == "1. Read the input: n on the first line the list on the second\n2. Print the largest value."


def test_teacher_plan_numbers_prose_sentences() -> None:
    plan, _ = teacher_plan("Read the number n. Then sum the list and print it.")
    assert plan == "1. Read the number n.\n2. Then sum the list and print it."


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("   \n ", "empty"),
    ("I'm sorry, but I can't help with that.", "refused"),
    ("```python\nprint(sum(map(int, input().split())))\n```", "only code"),
])
def test_teacher_plan_reports_why_an_answer_is_not_a_plan(text: str, reason: str) -> None:
    plan, why = teacher_plan(text)
    assert plan is None and reason in why


def test_teacher_plan_drops_repeated_steps() -> None:
    text = "1. Read n.\n2. Print n.\nHere it is again:\n3. Read n.\n4. Print n.\n5. Stop."
    assert teacher_plan(text)[0] == "1. Read n.\n2. Print n.\n3. Stop."


def test_teacher_plan_of_a_truncated_looping_answer_keeps_its_finished_distinct_steps() -> None:
    text = "1. Read t.\n2. Read the sides.\n3. Read the sides.\n4. Read the sides.\n5. Read the si"
    assert teacher_plan(text, truncated=True)[0] == "1. Read t.\n2. Read the sides."
    assert teacher_plan("1. Read t.\n2. Print", truncated=True)[0] == "1. Read t."
    assert teacher_plan("1. Read t.\n2. Print", truncated=False)[0] == "1. Read t.\n2. Print"
