"""`codeplan report --html`: the page's data (escaping, highlighting) and the page itself in a real
browser (headless Chromium through Selenium): summary numbers, a problem opened, filters, a link
to a problem, and untrusted text that must stay text."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.problems import Problem, TestCase, write_problems
from codeplan.report.html import build_html, embed_json, highlight, write_html

SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


def _write_run(folder: Path, data: Path, outcomes: dict[str, list[dict]], codes: dict[str, list[str]],
               pass_at_1: float, plans: dict[str, list[str]] | None = None) -> Path:
    """results.json (hand-made, in evaluate's contract) + samples.jsonl (+ samples.plans.jsonl)."""
    folder.mkdir(parents=True, exist_ok=True)
    problems = {pid: {"n": len(samples), "c": sum(s["passed"] for s in samples), "samples": samples}
                for pid, samples in outcomes.items()}
    verdicts: dict[str, int] = {}
    for samples in outcomes.values():
        for s in samples:
            verdicts[s["verdict"]] = verdicts.get(s["verdict"], 0) + 1
    results = {"pass_at_k": {"1": pass_at_1, "2": min(1.0, 2 * pass_at_1)}, "strict_accuracy": pass_at_1,
               "test_case_average": 0.5, "verdicts": verdicts, "problems": problems,
               "config": {"samples": str(folder / "samples.jsonl"), "data": str(data), "k": [1, 2]}}
    (folder / "results.json").write_text(json.dumps(results))
    rows, plan_rows = [], []
    for pid, programs in codes.items():
        row_extra: dict = {}
        if plans:
            texts = plans[pid]
            scores = [{"index": i, "programs": 2, "programs_passed": int(i == 1), "tests_passed": 1 + int(i == 1),
                       "tests_total": 2, "logprob": -3.0 - i, "pass_share": 0.5 * (i == 1), "test_rate": 0.5}
                      for i in range(len(texts))]
            selection = {"chosen": 1, "rule": "pass-share", "reason": "1/2 programs passed all example tests", "scores": scores}
            row_extra = {"plan": texts[1], "plan_index": 1, "selection": selection, "strategy": "plan-sampling"}
            plan_rows.append({"problem_id": pid, "selection": selection, "candidates": [
                {"plan_index": i, "plan": text, "score": scores[i],
                 "programs": [{"verdict": "pass" if i == 1 else "wrong_answer"}, {"verdict": "wrong_answer"}]}
                for i, text in enumerate(texts)]})
        for index, code in enumerate(programs):
            rows.append({"problem_id": pid, "sample_index": index, "code": code, "problem_samples": len(programs),
                         "strategy": "direct", **row_extra,
                         "budget": {"model_calls": 3, "sequences": 9, "completion_tokens": 420, "programs_judged": 4, "seconds": 1.5}})
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if plan_rows:
        (folder / "samples.plans.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plan_rows))
    return folder / "results.json"


def _ok(tests: int = 2) -> dict:
    return {"passed": True, "verdict": "pass", "tests_passed": tests, "tests_total": tests, "detail": ""}


def _wrong(output: str, expected: str = "3\n", given: str = "1 2\n") -> dict:
    return {"passed": False, "verdict": "wrong_answer", "tests_passed": 0, "tests_total": 2, "detail": f"test 0: output {output!r}",
            "failure": {"test": 0, "input": given, "expected": expected, "output": output, "stderr": ""}}


def make_runs(tmp_path: Path) -> list[str]:
    """Three problems, two arms: the baseline solves p-sum once; CodePLAN solves p-sum and p-rev."""
    data = tmp_path / "problems.jsonl"
    write_problems(data, [
        Problem(id="p-sum", statement="Add two numbers.\nRead a and b, print a + b.", kind="stdin", difficulty="introductory",
                public_tests=[TestCase(input="1 2\n", output="3\n")], hidden_tests=[TestCase(input="2 2\n", output="4\n")] * 2),
        Problem(id="p-rev", statement="Reverse a line of text.", kind="stdin", difficulty="interview",
                public_tests=[TestCase(input="abc\n", output="cba\n")], hidden_tests=[TestCase(input="ab\n", output="ba\n")] * 2),
        Problem(id="p-max", statement="Print the largest of n numbers.", kind="stdin", difficulty="competition",
                hidden_tests=[TestCase(input="2\n1 5\n", output="5\n")] * 2),
    ])
    baseline = _write_run(tmp_path / "baseline" / "direct", data, {
        "p-sum": [_ok(), _wrong("12\n")], "p-rev": [_wrong("abc\n", "cba\n", "abc\n"), _wrong("\n", "cba\n", "abc\n")],
        "p-max": [_wrong("1\n", "5\n", "2\n1 5\n"), _wrong("1\n", "5\n", "2\n1 5\n")]},
        {"p-sum": [SUM, "print(12)\n"], "p-rev": ["print(input())\n", "print()\n"], "p-max": ["print(1)\n", "print(1)\n"]}, 0.25)
    codeplan = _write_run(tmp_path / "codeplan" / "plan-sampling", data, {
        "p-sum": [_ok(), _ok()], "p-rev": [_ok(), _wrong("ab\n", "ba\n", "ab\n")],
        "p-max": [_wrong("2\n", "5\n", "2\n1 5\n"), _wrong("2\n", "5\n", "2\n1 5\n")]},
        {"p-sum": [SUM, SUM], "p-rev": ["print(input()[::-1])\n", "print(input())\n"], "p-max": ["print(2)\n", "print(2)\n"]}, 0.625,
        plans={pid: [f"1. read the input of {pid}\n2. guess", f"1. read the input of {pid}\n2. compute the answer"]
               for pid in ("p-sum", "p-rev", "p-max")})
    return [str(baseline), str(codeplan)]


# ---- without a browser -------------------------------------------------------------------------------


def test_embedded_json_cannot_end_its_script_block():
    hostile = {"code": "</script><script>alert(1)</script><!-- & \u2028", "nested": ["</SCRIPT >"]}
    text = embed_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == hostile


def test_highlight_covers_the_program_in_utf16_units():
    code = "def f(x):\r\n    return '😀' + x  # done\n"
    text, runs = highlight(code)
    assert text == code.replace("\r\n", "\n")
    assert sum(runs[1::2]) == len(text.encode("utf-16-le")) // 2  # the emoji counts twice, as in JavaScript
    assert any(cls for cls in runs[0::2])  # keywords and strings got a class


def test_page_is_self_contained_and_problem_blocks_are_separate(tmp_path: Path):
    page = build_html(make_runs(tmp_path))
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # nothing fetched
    assert page.count('<script type="application/json" id="p') == 3
    assert "Read a and b" not in page.split('id="p0"')[0]  # statements (past their first line) only in their block


# ---- in Chromium ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = "headless Chromium not installed (make install sets up chromium + chromium-driver where apt-get can run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def _open(driver, path: Path, fragment: str = "") -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri() + fragment)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return window.codeplanReportReady !== undefined"))


def _texts(driver, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [node.text for node in driver.find_elements(By.CSS_SELECTOR, selector) if node.is_displayed()]


def test_report_in_a_browser(browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    paths = make_runs(tmp_path)
    out = tmp_path / "report" / "report.md"
    outcome = CliRunner().invoke(app, ["report", *paths, "--out", str(out), "--html", str(out.with_suffix(".html"))])
    assert outcome.exit_code == 0, outcome.output
    page = out.with_suffix(".html")
    _open(browser, page)

    # Summary: the arms side by side, numbers as results.json has them.
    header = _texts(browser, "[data-table=results] thead th")
    assert header == ["", "baseline/direct", "codeplan/plan-sampling"]
    rows = {row[0]: row[1:] for row in ([c.text for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
                                        for tr in browser.find_elements(By.CSS_SELECTOR, "[data-table=results] tbody tr"))}
    # pass@1 per problem is (0.5, 0, 0) and (1, 0.5, 0): every bootstrap mean lies between the extremes,
    # and each extreme has chance (1/3)^3 or more, so the 95% interval is [min, max].
    assert rows["pass@1"] == ["25.00 [0.00, 50.00]", "62.50 [0.00, 100.00]"]
    assert rows["pass@2"][0].split(" [")[0] == "50.00" and rows["pass@2"][1].split(" [")[0] == "100.00"
    assert rows["problems (solved by any program)"] == ["3 (1)", "3 (2)"]
    assert rows["tokens generated per problem"] == ["420", "420"]
    assert len(browser.find_elements(By.CSS_SELECTOR, ".plots img")) == 2
    assert browser.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")

    # Open a problem from the list: statement, public test, the chosen plan, highlighted code, the failure.
    browser.find_element(By.ID, "tab-problems").click()
    browser.find_element(By.CSS_SELECTOR, '#list a[href="#problem=p-rev"]').click()
    assert browser.current_url.endswith("#problem=p-rev")
    problem = browser.find_element(By.ID, "problem")
    assert "Reverse a line of text." in problem.find_element(By.CSS_SELECTOR, "pre.statement").text
    arms = problem.find_elements(By.CSS_SELECTOR, "section.arm")
    assert [a.find_element(By.CSS_SELECTOR, "h3").text.split("\n")[0] for a in arms] == ["baseline/direct", "codeplan/plan-sampling"]
    chosen = arms[1].find_element(By.CSS_SELECTOR, ".plan-table tr.chosen td")
    assert chosen.text == "\u2605 1"
    assert "compute the answer" in arms[1].find_element(By.CSS_SELECTOR, "tr.plan-text.chosen pre").text
    assert arms[1].find_elements(By.CSS_SELECTOR, "pre.hl span.nb")  # `print` is a builtin: highlighted
    failure = arms[1].find_elements(By.CSS_SELECTOR, "details.sample")[1]
    snippets = {s.find_element(By.CSS_SELECTOR, ".label").text.lower(): s.find_element(By.CSS_SELECTOR, "pre").text
                for s in failure.find_elements(By.CSS_SELECTOR, ".snippet")}
    assert snippets == {"input": "ab", "expected": "ba", "output": "ab"}

    # Filter: solved by CodePLAN but not by the baseline -> p-rev only; then a verdict filter.
    Select(browser.find_element(By.ID, "f-solved")).select_by_visible_text("codeplan/plan-sampling")
    Select(browser.find_element(By.ID, "f-unsolved")).select_by_visible_text("baseline/direct")
    assert [t.split("\n")[0] for t in _texts(browser, "#list a")] == ["p-rev"]
    assert browser.find_element(By.ID, "count").text == "1 of 3 problems"
    browser.find_element(By.ID, "f-clear").click()
    Select(browser.find_element(By.ID, "f-verdict")).select_by_value("pass")
    assert [t.split("\n")[0] for t in _texts(browser, "#list a")] == ["p-sum", "p-rev"]
    browser.find_element(By.ID, "f-clear").click()
    search = browser.find_element(By.ID, "search")
    search.send_keys("[::-1]")  # text inside a program, found without opening the problem
    browser.implicitly_wait(0)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: d.find_element(By.ID, "count").text == "1 of 3 problems")
    assert [t.split("\n")[0] for t in _texts(browser, "#list a")] == ["p-rev"]
    search.clear()
    browser.find_element(By.ID, "f-clear").click()

    # Next from p-rev is p-max; a fragment link opens its problem on load.
    browser.find_element(By.ID, "next").click()
    assert browser.current_url.endswith("#problem=p-max")
    assert browser.find_element(By.CSS_SELECTOR, "#problem h2 .pid").text == "p-max"
    _open(browser, page, "#problem=p-sum")
    assert browser.find_element(By.CSS_SELECTOR, "#problem h2 .pid").text == "p-sum"
    assert not browser.find_element(By.ID, "problems-view").get_attribute("hidden")
    shot = tmp_path / "report-html.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_untrusted_text_stays_text(browser, tmp_path: Path):
    """Markup in a program, a plan, an output, a statement, a label and a problem id is shown as
    written; nothing in it runs or becomes an element (fails if embed_json or text() stop escaping)."""
    paths = make_runs(tmp_path)
    evil = ('</script><script>window.pwned = 1; document.title = "pwned"</script>'
            '<img id="injected" src="x" onerror="window.pwned = 2"><!--')
    for path in paths:
        folder = Path(path).parent
        results = json.loads(Path(path).read_text())
        results["problems"]["p-sum"]["samples"][0] = _wrong(evil, expected=evil, given=evil)
        Path(path).write_text(json.dumps(results))
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        rows[0]["code"] = f"print({evil!r})  # {evil}\n"
        if "plan" in rows[0]:
            for row in rows:
                row["plan"] = evil
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        plans = folder / "samples.plans.jsonl"
        if plans.exists():
            records = [json.loads(line) for line in plans.read_text().splitlines()]
            records[0]["candidates"][1]["plan"] = evil
            plans.write_text("".join(json.dumps(r) + "\n" for r in records))
    data = Path(json.loads(Path(paths[0]).read_text())["config"]["data"])
    lines = data.read_text().splitlines()
    first = json.loads(lines[0])
    first["statement"] = evil
    data.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    page = write_html(paths, tmp_path / "evil.html", labels=[evil, "codeplan"], meta={"run": evil})
    _open(browser, page, "#problem=p-sum")
    from selenium.webdriver.common.by import By

    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.ID, "injected") == []  # (the page's CSP would stop its onerror; not its element)
    assert browser.title == f"{evil} \u2013 codeplan report"
    # The problem was rendered (its block parsed and drawn), with the hostile text visible as text.
    codes = _texts(browser, "#problem pre.code")
    assert any("<script>window.pwned" in code for code in codes)
    assert evil in browser.find_element(By.CSS_SELECTOR, "#problem pre.statement").text
    assert any(evil in text for text in _texts(browser, "#problem .snippet pre"))
    assert any(evil in text for text in _texts(browser, "#problem pre.plan"))
    assert evil in browser.find_element(By.CSS_SELECTOR, "[data-table=results] thead").get_attribute("textContent")  # a label
    assert browser.execute_script("return document.querySelectorAll('script').length") == 3 + 3 + 1  # summary, index, classes; a block per problem; the page's own


def test_intervals_and_paired_tests_are_shown_when_a_run_has_them(tmp_path: Path):
    """Fields another report stage may add (bootstrap intervals, McNemar's test) reach the tables."""
    from codeplan.report import build_report
    from codeplan.report.html import summary_tables

    paths = make_runs(tmp_path)
    report = build_report(paths)
    raw = [json.loads(Path(p).read_text()) for p in paths]
    computed = {t["id"]: t for t in summary_tables(report, raw)}
    assert {row[0]["t"]: row[1:] for row in computed["results"]["rows"]}["pass@1"][1]["s"] == "[0.00, 100.00]"
    # Intervals a results.json carries are shown where the report computed none.
    del report["runs"][0]["intervals"], report["runs"][1]["intervals"]
    raw[1]["intervals"] = {"pass@1": [0.5, 0.75], "strict_accuracy": {"low": 0.4, "high": 0.8}}
    report["comparisons"][0]["rows"][0]["p_value"] = 0.0312
    tables = {t["id"]: t for t in summary_tables(report, raw)}
    rows = {row[0]["t"]: row[1:] for row in tables["results"]["rows"]}
    assert rows["pass@1"][1] == {"t": "62.50", "s": "[50.00, 75.00]"} and "s" not in rows["pass@1"][0]
    assert rows["strict accuracy"][1]["s"] == "[40.00, 80.00]"
    assert tables["comparison"]["header"][-1] == "p_value" and tables["comparison"]["rows"][0][-1]["t"] == "0.0312"
