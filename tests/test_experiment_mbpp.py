"""The MBPP experiment's README table is the report's Summary table rebuilt from the committed
results, in run.sh's report order: a README edited by hand, or not rebuilt after new results,
fails here."""

from __future__ import annotations

import re
from pathlib import Path

from codeplan.report import build_report, marked_summary, summary_table

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "mbpp"


def report_order() -> list[str]:
    """The arms in the order run.sh's report step gives them (its REPORT_ORDER line)."""
    found = re.findall(r'^REPORT_ORDER="([^"]+)"$', (EXPERIMENT / "run.sh").read_text(encoding="utf-8"), re.MULTILINE)
    assert len(found) == 1, "run.sh must set REPORT_ORDER once, on one line"
    return found[0].split()


def test_report_order_starts_with_the_reference_and_names_every_arm_run_sh_runs():
    order = report_order()
    arms = re.findall(r"^\s+arm (\S+)", (EXPERIMENT / "run.sh").read_text(encoding="utf-8"), re.MULTILINE)
    arms = [arm for arm in arms if not arm.startswith("humanevalplus/")]  # the transfer check, reported apart
    assert order[0] == "baseline-direct" and sorted(order) == sorted(arms) and len(set(order)) == len(order)


def test_readme_table_is_the_summary_of_the_committed_results():
    paths = [str(EXPERIMENT / "out" / name / "results.json") for name in report_order()
             if (EXPERIMENT / "out" / name / "results.json").is_file()]
    assert paths, "no committed results.json among run.sh's arms"
    expected = summary_table(build_report(paths))[:-1]  # the table without the blank line after it
    assert marked_summary(EXPERIMENT / "README.md") == expected, (
        "experiments/mbpp/README.md's summary table is stale: rebuild it with "
        "`STEPS=report bash experiments/mbpp/run.sh` (or `codeplan report ... --summary-into experiments/mbpp/README.md`)")
