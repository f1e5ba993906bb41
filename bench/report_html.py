"""Size and load time of `codeplan report --html` at the MBPP experiment's scale, in headless Chromium.

    .venv/bin/python bench/report_html.py                     # 500 problems x 6 arms x 8 programs
    .venv/bin/python bench/report_html.py --problems 100 --arms 2

Builds synthetic runs in a temporary folder: MBPP's 500 test problems (../shared/data/mbpp, or
made-up statements where it is absent), 6 arms of 8 programs per problem (the problem's
reference solution and altered copies of it, verdicts drawn at random, a failure snippet on every
failing program), every other arm plan-sampled with 20 plans per problem (text, scores, 10
programs' verdicts each). Then writes report.html and opens it in headless Chromium (the test
suite's launch flags), printing:
  build seconds, file size;
  load: navigation start -> page ready (index parsed, summary and list drawn), median of 3;
  open: one problem opened through its link (its block parsed and drawn), median over 20;
  baseline in the same page: every problem drawn, one after another (what a page without lazy
  rendering would do at load before showing anything), and its ratio to the lazy load.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeplan.problems import Problem, TestCase, write_problems  # noqa: E402
from codeplan.report.html import write_html  # noqa: E402

MBPP = ROOT.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"
VERDICTS = ["pass"] * 5 + ["wrong_answer"] * 3 + ["runtime_error", "timeout", "compile_error"]


def problems(count: int) -> list[Problem]:
    if MBPP.is_file():
        from codeplan.config import DataConfig
        from codeplan.data import load_problems

        return load_problems(DataConfig(path=str(MBPP), split="test"))[:count]
    return [Problem(id=str(i), statement=f"Write a function f{i} that returns the sum of the digits of n, {i} times.",
                    kind="assert", entry_point=f"f{i}", solutions=[f"def f{i}(n):\n    return sum(int(d) for d in str(n)) * {i}\n"],
                    hidden_tests=[TestCase(input=f"assert f{i}(12) == {3 * i}")] * 3) for i in range(count)]


def variant(code: str, rng: random.Random) -> str:
    """An altered copy of a program, about as long (what a model's samples look like)."""
    lines = code.replace("\r\n", "\n").split("\n")
    if len(lines) > 2 and rng.random() < 0.5:
        lines.insert(rng.randrange(1, len(lines)), "    # check the edge case first")
    return "\n".join(lines).replace("+ 1", "+ 2" if rng.random() < 0.3 else "+ 1") + "\n"


def write_arm(folder: Path, data: Path, chosen: list[Problem], samples: int, plans: int, rng: random.Random) -> str:
    folder.mkdir(parents=True)
    outcomes, rows, plan_rows = {}, [], []
    for problem in chosen:
        reference = problem.solutions[0] if problem.solutions else "def f():\n    return 0\n"
        judged = []
        selection = None
        if plans:
            scores = [{"index": i, "programs": 10, "programs_passed": p, "tests_passed": p, "tests_total": 10,
                       "logprob": round(-rng.uniform(5, 40), 2), "pass_share": p / 10, "test_rate": p / 10}
                      for i, p in enumerate(rng.randrange(0, 11) for _ in range(plans))]
            best = max(scores, key=lambda s: (s["pass_share"], s["test_rate"], s["logprob"]))
            selection = {"chosen": best["index"], "rule": "pass-share", "reason": "best pass share", "scores": scores}
            plan_rows.append({"problem_id": problem.id, "selection": selection, "candidates": [
                {"plan_index": s["index"], "score": s,
                 "plan": "\n".join(f"{n}. {rng.choice(['Read', 'Loop over', 'Sort', 'Count', 'Return'])} the "
                                   f"{rng.choice(['input list', 'digits', 'pairs', 'string', 'answer'])}" for n in range(1, 7)),
                 "programs": [{"verdict": "pass" if j < s["programs_passed"] else "wrong_answer"} for j in range(10)]}
                for s in scores]})
        for index in range(samples):
            code = reference if index == 0 else variant(reference, rng)
            verdict = rng.choice(VERDICTS)
            total = len(problem.hidden_tests) or 3
            record = {"passed": verdict == "pass", "verdict": verdict, "tests_passed": total if verdict == "pass" else rng.randrange(total),
                      "tests_total": total, "detail": "" if verdict == "pass" else f"test 0: {verdict}"}
            if verdict != "pass" and verdict != "compile_error":
                test = problem.hidden_tests[0].input if problem.hidden_tests else "assert f(1) == 2"
                record["failure"] = {"test": 0, "input": str(test), "expected": "[1, 2, 3]", "output": "[1, 2]",
                                     "stderr": "" if verdict == "wrong_answer" else "Traceback (most recent call last):\n  ...\nIndexError: list index out of range"}
            judged.append(record)
            row = {"problem_id": problem.id, "sample_index": index, "code": code, "problem_samples": samples,
                   "strategy": "plan-sampling" if plans else "direct",
                   "budget": {"model_calls": 21 if plans else 1, "sequences": 228 if plans else samples,
                              "completion_tokens": 30_000 if plans else 900, "programs_judged": 200 if plans else 0, "seconds": 40.0}}
            if selection:
                row.update(plan=plan_rows[-1]["candidates"][selection["chosen"]]["plan"], plan_index=selection["chosen"], selection=selection)
            rows.append(row)
        outcomes[problem.id] = {"n": samples, "c": sum(r["passed"] for r in judged), "difficulty": problem.difficulty, "samples": judged}
    share = sum(o["c"] > 0 for o in outcomes.values()) / len(outcomes)
    results = {"pass_at_k": {"1": share / 2, "5": share}, "strict_accuracy": share / 2, "test_case_average": share,
               "problems": outcomes, "config": {"samples": str(folder / "samples.jsonl"), "data": str(data)}}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if plan_rows:
        (folder / "samples.plans.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plan_rows))
    return str(folder / "results.json")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    profile = tempfile.mkdtemp(prefix="codeplan-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options), profile


def measure(page: Path, ids: list[str]) -> dict[str, float]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = browser()
    try:
        loads = []
        for _ in range(3):
            driver.get("about:blank")
            driver.get(page.resolve().as_uri())
            WebDriverWait(driver, 120).until(lambda d: d.execute_script("return window.codeplanReportReady !== undefined"))
            loads.append(driver.execute_script("return window.codeplanReportReady"))
        opens = []
        rng = random.Random(1)
        for pid in rng.sample(ids, min(20, len(ids))):
            started = time.perf_counter()
            driver.execute_script("location.hash = arguments[0]", "problem=" + pid)
            WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#problem h2 .pid").text == pid)
            opens.append(1000 * (time.perf_counter() - started))
        # The baseline: every problem drawn, one after another, in this page (what a page that
        # drew everything at load would do before showing anything).
        driver.set_script_timeout(900)
        eager = driver.execute_script("""
            const t0 = performance.now();
            for (const a of document.querySelectorAll('#list a')) {
              history.replaceState(null, '', a.getAttribute('href'));
              window.dispatchEvent(new HashChangeEvent('hashchange'));
            }
            return performance.now() - t0;""")
        return {"load_ms": statistics.median(loads), "open_ms": statistics.median(opens), "eager_ms": eager}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--arms", type=int, default=6)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--plans", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(0)
    chosen = problems(args.problems)
    with tempfile.TemporaryDirectory(prefix="codeplan-bench-report-") as tmp:
        root = Path(tmp)
        data = root / "problems.jsonl"
        write_problems(data, chosen)
        paths = [write_arm(root / f"arm{a}", data, chosen, args.samples, args.plans if a % 2 else 0, rng)
                 for a in range(args.arms)]
        labels = [f"{'codeplan' if a % 2 else 'baseline'}-{a}/{'plan-sampling' if a % 2 else 'direct'}" for a in range(args.arms)]
        started, cpu = time.perf_counter(), time.process_time()
        page = write_html(paths, root / "report.html", labels=labels)
        build, build_cpu = time.perf_counter() - started, time.process_time() - cpu
        size = page.stat().st_size
        figures = measure(page, [p.id for p in chosen])
    print(f"{len(chosen)} problems x {args.arms} arms x {args.samples} programs "
          f"({args.plans} plans per problem in {args.arms // 2} plan-sampling arms)")
    print(f"build: {build:.1f} s ({build_cpu:.1f} CPU s)   file: {size / 2**20:.1f} MiB")
    print(f"load (navigation start -> ready, median of 3): {figures['load_ms']:.0f} ms")
    print(f"open one problem (median of 20): {figures['open_ms']:.0f} ms")
    print(f"baseline, every problem drawn at once: {figures['eager_ms'] / 1000:.1f} s "
          f"= {figures['eager_ms'] / figures['load_ms']:.0f}x the lazy load")


if __name__ == "__main__":
    main()
