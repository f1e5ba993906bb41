"""Markdown and JSON tables plus PNG plots from one or more results.json files.

For each results.json the report reads, where it can find them, the samples it judged (the
`samples` path recorded in results.json, else samples.jsonl beside it) and their summary
(samples.summary.json): these add the budget spent and, for plan sampling, every plan choice.
A run whose label says `baseline` is the reference the others are compared with (else the first).
`controls` (run label -> label of another run) adds a comparison of a run with its own control,
e.g. plan sampling with the baseline reranked on the same public tests at the same budget.

Statistics (codeplan.stats) come from each results.json's per-problem records: every run gets a
95% bootstrap interval of its averages (`intervals`, over the same problems as the averages:
those with at least one sample), and every comparison row a paired test and an interval of the
difference computed only on the problems both runs have samples for. Problems without samples
(`problems_without_samples`, written by `codeplan evaluate`) are counted per run and said to be
outside the averages, never dropped silently.

The report opens with a Summary: one table, a row per run, of pass@1 with its interval, strict
accuracy, test-case average, the generation cost per problem (samples.summary.json's budget), the
judge's CPU (results.json's `cost`) and pass@1's paired difference against the reference (and
against the run's control, in a column of its own, when any run has one).
report.json holds the same rows as data (`summary`). `replace_summary` copies that table into a
block of another markdown file (an experiment's README) between SUMMARY_START and SUMMARY_END, so
the README's table is rebuilt from the results files, never typed. A cost a run's files did not
record is None in the data and "unknown" in the tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from codeplan.errors import InputError
from codeplan.jsonl import read_jsonl, write_json
from codeplan.samples import sidecar_paths, summarize_samples
from codeplan.selection import PlanScore, solved_by_plan_count
from codeplan.stats import LEVEL, RESAMPLES, SEED, bootstrap_interval, mcnemar_exact, paired_bootstrap, problem_values

DIFFICULTY_ORDER = ("introductory", "interview", "competition")
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"


# ---- reading ------------------------------------------------------------------------------------


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check one results.json (the evaluate stage's contract)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("results file not found", path=path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    if not isinstance(results, dict):
        raise InputError("expected a JSON object", path=path)
    if not isinstance(results.get("pass_at_k"), dict):
        raise InputError("missing the pass_at_k mapping (is this a results.json from `codeplan evaluate`?)",
                         path=path, field="pass_at_k")
    for key, value in results["pass_at_k"].items():
        if not isinstance(value, (int, float)) or not str(key).isdigit():
            raise InputError(f"expected k -> number, got {key!r}: {value!r}", path=path, field=f"pass_at_k.{key}")
    problems = results.get("problems", {})
    if not isinstance(problems, dict):
        raise InputError("expected a mapping of problem id -> outcome", path=path, field="problems")
    return results


def _label(path: Path, results: dict[str, Any]) -> str:
    for source in (results, results.get("meta") or {}):
        if isinstance(source.get("label"), str) and source["label"]:
            return source["label"]
    parent = path.parent
    if path.name == "results.json" and parent.name:
        return f"{parent.parent.name}/{parent.name}" if parent.parent.name else parent.name
    return path.stem


def _samples_path(path: Path, results: dict[str, Any]) -> Path | None:
    candidates = []
    for source in (results, results.get("meta") or {}, results.get("config") or {}):
        value = source.get("samples") if isinstance(source, dict) else None
        if isinstance(value, str):
            candidates += [Path(value), path.parent / value]
    candidates.append(path.parent / "samples.jsonl")
    return next((c for c in candidates if c.is_file()), None)


def _summary_of(samples: Path | None) -> dict[str, Any] | None:
    if samples is None:
        return None
    summary_path = sidecar_paths(samples)[1]
    if summary_path.is_file():
        try:
            return json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
    return summarize_samples(samples)


def _selections(samples: Path | None) -> dict[str, dict[str, Any]]:
    """problem id -> {selection, plan} of the first sample of each plan-sampled problem."""
    if samples is None:
        return {}
    chosen: dict[str, dict[str, Any]] = {}
    for row in read_jsonl(samples, skip_torn_tail=True):
        if row.get("selection") and row["problem_id"] not in chosen:
            chosen[row["problem_id"]] = {"selection": row["selection"], "plan": row.get("plan", "")}
    return chosen


# ---- numbers ------------------------------------------------------------------------------------


def _pass_at_k(block: Any) -> dict[str, float]:
    """pass@k of a per-difficulty entry, which may be {"pass_at_k": {...}, ...} or {k: value}."""
    if not isinstance(block, dict):
        return {}
    inner = block.get("pass_at_k", block)
    return {str(k): float(v) for k, v in inner.items() if str(k).isdigit() and isinstance(v, (int, float))}


def _per_difficulty(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = {}
    for name, block in (results.get("per_difficulty") or {}).items():
        if isinstance(block, dict):
            table[name] = {"pass_at_k": _pass_at_k(block), "problems": block.get("problems", block.get("num_problems", block.get("count"))),
                           "strict_accuracy": block.get("strict_accuracy"),
                           "test_case_average": block.get("test_case_average")}
    return dict(sorted(table.items(), key=lambda item: (DIFFICULTY_ORDER.index(item[0])
                                                        if item[0] in DIFFICULTY_ORDER else 99, item[0])))


def relative_change(new: float | None, reference: float | None) -> float | None:
    """(new - reference) / reference; None when the reference is zero or missing."""
    if new is None or reference is None or reference == 0:
        return None
    return (new - reference) / reference


def _fmt(value: Any, *, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and percent:
        return f"{100 * value:.2f}"
    return str(value)


def _num(value: Any) -> str:
    """A count or an average: no decimals when it is whole, two at most otherwise."""
    if value is None:
        return "n/a"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0")


def _bracket(interval: list[float] | None) -> str:
    return f" [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]" if interval else ""


def _fmt_difference(difference: float | None, interval: list[float] | None) -> str:
    """A difference of shares in percentage points, with its interval: "+15.00 [5.00, 25.00]"."""
    if difference is None:
        return "n/a"
    return f"{100 * difference:+.2f}" + (f" [{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]" if interval else "")


def _fmt_p(p_value: float | None, method: str | None) -> str:
    if p_value is None:
        return "n/a"
    shown = f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"
    return f"{shown} ({method})" if method else shown


def _fmt_change(change: float | None, new: float | None, reference: float | None) -> str:
    if change is None:
        if new is not None and reference == 0:
            return "n/a (reference 0)" if new else "0"
        return "n/a"
    return f"{100 * change:+.1f}%"


# ---- statistics -------------------------------------------------------------------------------------

STATISTICS = {
    "interval": f"{LEVEL:.0%} percentile bootstrap of the mean over problems",
    "resamples": RESAMPLES, "seed": SEED,
    "paired_test": "exact McNemar (two-sided binomial on the problems only one run solved) for pass@k and strict "
                   "accuracy when every compared problem has one program in each run; else a paired bootstrap "
                   "over the shared problems: p = 2 x the smaller share of resampled mean differences <= 0 or >= 0, "
                   "each share (count + 1) / (resamples + 1), capped at 1",
}
_METRIC_KEYS = {"strict accuracy": "strict_accuracy", "test-case average": "test_case_average"}


def _problem_table(path: Path, results: dict[str, Any]) -> dict[str, tuple[int, dict[str, float]]]:
    """problem id -> (samples, metric values) from results.json's `problems` records."""
    ks = [int(k) for k in results["pass_at_k"]]
    table = {}
    for problem_id, record in results.get("problems", {}).items():
        if not isinstance(record, dict):
            raise InputError("expected an object with n and c", path=path, record=problem_id, field=f"problems.{problem_id}")
        n, c = record.get("n"), record.get("c")
        if not isinstance(n, int) or not isinstance(c, int) or n < 1 or not 0 <= c <= n:
            raise InputError(f"expected counts with 0 <= c <= n and n >= 1, got n={n!r}, c={c!r}",
                             path=path, record=problem_id, field=f"problems.{problem_id}.n")
        table[problem_id] = (n, problem_values(record, ks))
    return table


def _intervals(table: dict[str, tuple[int, dict[str, float]]]) -> dict[str, list[float]]:
    """metric -> [low, high] for each metric every problem has a value for."""
    if not table:
        return {}
    metrics = set.intersection(*(set(values) for _, values in table.values()))
    ordered = sorted(metrics, key=lambda m: (not m.startswith("pass@"), int(m[5:]) if m.startswith("pass@") else 0, m))
    return {m: list(bootstrap_interval([values[m] for _, values in table.values()])) for m in ordered}


def _paired(metric: str, run: dict[str, tuple[int, dict[str, float]]], reference: dict[str, tuple[int, dict[str, float]]],
            shared: list[str]) -> dict[str, Any]:
    """difference, difference_interval, p_value and method of one metric on the shared problems."""
    none = {"difference": None, "difference_interval": None, "p_value": None, "method": None}
    if not shared or any(metric not in table[pid][1] for table in (run, reference) for pid in shared):
        return none
    new, old = [run[pid][1][metric] for pid in shared], [reference[pid][1][metric] for pid in shared]
    boot = paired_bootstrap(new, old)
    row = {"difference": boot["difference"], "difference_interval": boot["interval"], "p_value": boot["p_value"],
           "method": "paired bootstrap"}
    one_program = all(run[pid][0] == 1 and reference[pid][0] == 1 for pid in shared)
    if one_program and metric != "test_case_average":
        row["p_value"] = mcnemar_exact(sum(1 for a, b in zip(new, old) if a > b), sum(1 for a, b in zip(new, old) if b > a))
        row["method"] = "exact McNemar"
    return row


# ---- building the report ------------------------------------------------------------------------


def build_report(paths: list[str], labels: list[str] | None = None,
                 meta: dict[str, Any] | None = None, controls: dict[str, str] | None = None) -> dict[str, Any]:
    """The report as data (what report.json holds). A control absent from the runs (not run
    yet) gives no comparison."""
    if not paths:
        raise InputError("no results.json given")
    runs, tables = [], []
    for index, raw in enumerate(paths):
        path = Path(raw)
        results = load_results(path)
        tables.append(_problem_table(path, results))
        samples = _samples_path(path, results)
        label = labels[index] if labels and index < len(labels) else _label(path, results)
        problems = results.get("problems", {})
        runs.append({
            "label": label, "results": str(path), "samples": str(samples) if samples else None,
            "problems": len(problems) or None,
            "problems_without_samples": results.get("problems_without_samples"),
            "samples_per_problem": (sum(int(p.get("n", 0)) for p in problems.values()) / len(problems)) if problems else None,
            "solved": sum(1 for p in problems.values() if int(p.get("c", 0)) > 0) if problems else None,
            "pass_at_k": _pass_at_k(results["pass_at_k"]),
            "strict_accuracy": results.get("strict_accuracy"),
            "test_case_average": results.get("test_case_average"),
            "intervals": _intervals(tables[-1]),
            "per_difficulty": _per_difficulty(results),
            "verdicts": results.get("verdicts") if isinstance(results.get("verdicts"), dict) else None,
            "generation": _summary_of(samples),
            "cost": results.get("cost") if isinstance(results.get("cost"), dict) else None,
            "meta": results.get("meta") or {},
        })
    seen: dict[str, int] = {}
    for run in runs:  # labels must be unique to name table columns
        if run["label"] in seen:
            seen[run["label"]] += 1
            run["label"] = f"{run['label']} ({seen[run['label']]})"
        else:
            seen[run["label"]] = 1
    ks = sorted({int(k) for run in runs for k in run["pass_at_k"]})
    reference = next((run for run in runs if "baseline" in run["label"].lower()), runs[0])
    table_of = {run["label"]: table for run, table in zip(runs, tables)}
    by_label = {run["label"]: run for run in runs}
    comparisons = [_compare(run, reference, table_of, ks) for run in runs if run is not reference]
    controlled = {}
    for label, control in (controls or {}).items():
        if label in by_label and control in by_label and control != label and control != reference["label"]:
            controlled[label] = _compare(by_label[label], by_label[control], table_of, ks)
    comparisons += controlled.values()
    return {"runs": runs, "ks": ks, "reference": reference["label"], "comparisons": comparisons, "meta": meta or {},
            "summary": _summary_rows(runs, reference["label"], comparisons, controlled), "statistics": STATISTICS,
            "selections": {run["label"]: _selections(Path(run["samples"])) if run["samples"] else {} for run in runs}}


def _compare(run: dict[str, Any], reference: dict[str, Any], table_of: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """`run` against `reference`, metric by metric, paired on the problems both have."""
    mine, theirs = table_of[run["label"]], table_of[reference["label"]]
    shared = sorted(set(mine) & set(theirs))
    rows = []
    for name, new, ref in [(f"pass@{k}", run["pass_at_k"].get(str(k)), reference["pass_at_k"].get(str(k))) for k in ks] + [
            ("strict accuracy", run["strict_accuracy"], reference["strict_accuracy"]),
            ("test-case average", run["test_case_average"], reference["test_case_average"])]:
        rows.append({"metric": name, "reference": ref, "value": new, "relative_change": relative_change(new, ref),
                     **_paired(_METRIC_KEYS.get(name, name), mine, theirs, shared)})
    return {"reference": reference["label"], "run": run["label"], "problems_compared": len(shared),
            "problems_missing_in_run": len(set(theirs) - set(mine)),
            "problems_missing_in_reference": len(set(mine) - set(theirs)), "rows": rows}


def _pass_at_1_row(comparison: dict[str, Any] | None) -> dict[str, Any] | None:
    row = next((row for row in comparison["rows"] if row["metric"] == "pass@1"), None) if comparison else None
    return None if row is None else {key: row.get(key) for key in ("difference", "difference_interval", "p_value", "method")}


def _summary_rows(runs: list[dict[str, Any]], reference: str, comparisons: list[dict[str, Any]],
                  controlled: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Summary table as data: a row per run, from what the runs and comparisons already hold."""
    against_reference = {c["run"]: c for c in comparisons if c["reference"] == reference}
    rows = []
    for run in runs:
        per_problem = (run["generation"] or {}).get("budget_per_problem") or {}
        judge_cpu = (run.get("cost") or {}).get("cpu_seconds")
        control = controlled.get(run["label"])
        rows.append({
            "run": run["label"], "reference": run["label"] == reference,
            "pass@1": run["pass_at_k"].get("1"), "pass@1_interval": (run.get("intervals") or {}).get("pass@1"),
            "strict_accuracy": run["strict_accuracy"], "test_case_average": run["test_case_average"],
            "programs_per_problem": per_problem.get("programs"), "tokens_per_problem": per_problem.get("completion_tokens"),
            "generation_cpu_seconds_per_problem": per_problem.get("cpu_seconds"),
            "evaluation_cpu_seconds_per_problem": judge_cpu / run["problems"] if judge_cpu is not None and run["problems"] else None,
            "pass@1_difference": _pass_at_1_row(against_reference.get(run["label"])),
            **({"control": control["reference"], "pass@1_difference_to_control": _pass_at_1_row(control)} if control else {}),
        })
    return rows


def _known(value: Any, spec: str) -> str:
    return "unknown" if value is None else format(value, spec)


def _versus(difference: dict[str, Any] | None) -> str:
    if difference is None or difference.get("difference") is None:
        return "n/a"
    return (_fmt_difference(difference["difference"], difference["difference_interval"]) + ", p "
            + _fmt_p(difference["p_value"], difference["method"]))


def summary_table(report: dict[str, Any]) -> list[str]:
    """The Summary section's table (markdown lines, a blank line last): report.json's `summary` rows.
    A last column, pass@1 against the run's own control, appears when any run has one."""
    with_controls = any("control" in row for row in report["summary"])
    rows = []
    for row in report["summary"]:
        programs, tokens = row["programs_per_problem"], row["tokens_per_problem"]
        cells = [row["run"], _fmt(row["pass@1"]) + _bracket(row["pass@1_interval"]), _fmt(row["strict_accuracy"]),
                 _fmt(row["test_case_average"]),
                 f"{_known(programs, 'g')} / {_known(tokens, '.0f')}",
                 _known(row["generation_cpu_seconds_per_problem"], ".2f"),
                 _known(row["evaluation_cpu_seconds_per_problem"], ".2f"),
                 "reference" if row["reference"] else _versus(row["pass@1_difference"])]
        if with_controls:
            cells.append(f"{_versus(row['pass@1_difference_to_control'])} (vs {row['control']})" if "control" in row else "")
        rows.append(cells)
    header = ["run", "pass@1 [95% interval]", "strict acc.", "test-case avg.", "programs / tokens generated per problem",
              "generation CPU s per problem", "evaluation CPU s per problem",
              f"pass@1 minus {report['reference']} [95% interval], p"]
    return _table(header + (["pass@1 minus its control [95% interval], p"] if with_controls else []), rows)


def replace_summary(path: str | Path, report: dict[str, Any]) -> None:
    """Put the Summary table between the SUMMARY_START and SUMMARY_END lines of the markdown file
    at `path` (e.g. an experiment's README), leaving the rest of it as it is."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file to put the summary table into not found", path=path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    marks = {mark: [i for i, line in enumerate(lines) if line.strip() == mark] for mark in (SUMMARY_START, SUMMARY_END)}
    for mark, found in marks.items():
        if len(found) != 1:
            raise InputError(f"expected the line {mark} once, found it {len(found)} times", path=path)
    start, end = marks[SUMMARY_START][0], marks[SUMMARY_END][0]
    if end < start:
        raise InputError(f"{SUMMARY_END} comes before {SUMMARY_START}", path=path, line=end + 1)
    table = [line + "\n" for line in summary_table(report)[:-1]]  # without the blank line after it
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines[:start + 1] + table + lines[end:]), encoding="utf-8")
    tmp.replace(path)


def marked_summary(path: str | Path) -> list[str]:
    """The lines between SUMMARY_START and SUMMARY_END in a markdown file (what replace_summary put there)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    start, end = lines.index(SUMMARY_START), lines.index(SUMMARY_END)
    return lines[start + 1:end]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict[str, Any], plots: dict[str, str]) -> str:
    ks, runs = report["ks"], report["runs"]
    out = ["# codeplan report", ""]
    stats = report.get("statistics") or STATISTICS
    out += ["## Summary", "", (
        f"One row per run, on the hidden tests. Percent: pass@1 with its {stats['interval']}, strict accuracy, "
        "test-case average (as in Results below). Per problem: programs and tokens generated (plans' tokens "
        "included), generation CPU seconds (samples.summary.json: the generating process's share plus the programs "
        "judged on the public tests) and evaluation CPU seconds (results.json's `cost`: the judged programs' own "
        "CPU); \"unknown\" where a run's files did not record it. Last column: pass@1 minus the reference run's, in "
        "points, on the problems both have, with its paired interval and the p-value of the test named."), ""]
    out += summary_table(report)
    out += ["## Results (hidden tests)", "", "All figures in percent: pass@k (unbiased estimator), strict accuracy "
            "(problems solved on every hidden test, APPS-style) and test-case average (mean share of hidden tests "
            "passed), as computed by `codeplan evaluate`.", ""]
    out += _table(["run", "problems", "no samples", "programs/problem", *[f"pass@{k}" for k in ks], "strict acc.",
                   "test-case avg."],
                  [[run["label"], _fmt(run["problems"]), _fmt(run.get("problems_without_samples")),
                    _num(run["samples_per_problem"]),
                    *[_fmt(run["pass_at_k"].get(str(k))) + (_bracket(run.get("intervals", {}).get("pass@1")) if k == 1 else "")
                      for k in ks], _fmt(run["strict_accuracy"]), _fmt(run["test_case_average"])] for run in runs])
    out += [f"Averages are over the problems with at least one sample (the `problems` column); problems without "
            f"samples (`no samples`, from results.json's `problems_without_samples`) are outside the averages, not "
            f"counted as unsolved. In brackets after pass@1: its {stats['interval']} ({stats['resamples']:,} "
            f"resamples, seed {stats['seed']}).", ""]
    missing = [run for run in runs if run.get("problems_without_samples") and run["pass_at_k"].get("1") is not None
               and run["problems"]]
    if missing:
        out += ["Counting problems without samples as unsolved, pass@1 would be: " + "; ".join(
            f"{run['label']} {_fmt(run['pass_at_k']['1'] * run['problems'] / (run['problems'] + run['problems_without_samples']))}"
            f" (of {run['problems'] + run['problems_without_samples']})" for run in missing) + ".", ""]
    verdict_rows = [[run["label"], ", ".join(f"{name} {count}" for name, count in
                                             sorted(run["verdicts"].items(), key=lambda item: -item[1]))]
                    for run in runs if run.get("verdicts")]
    if verdict_rows:
        out += ["Verdicts of all judged programs:", ""]
        out += _table(["run", "verdicts"], verdict_rows)
    for comparison in report["comparisons"]:
        out += [f"## {comparison['run']} against {comparison['reference']}", ""]
        if "problems_compared" in comparison:
            out += [f"Paired on the {comparison['problems_compared']} problems both runs have samples for "
                    f"({comparison['run']} lacks {comparison['problems_missing_in_run']} of {comparison['reference']}'s, "
                    f"{comparison['reference']} lacks {comparison['problems_missing_in_reference']} of "
                    f"{comparison['run']}'s). Difference: {comparison['run']} minus {comparison['reference']} on those "
                    f"problems, in percentage points, with its paired bootstrap interval; p: the paired test "
                    f"named beside it.", ""]
        out += _table(["metric", comparison["reference"], comparison["run"], "relative change", "difference [95% interval]", "p"],
                      [[row["metric"], _fmt(row["reference"]), _fmt(row["value"]),
                        _fmt_change(row["relative_change"], row["value"], row["reference"]),
                        _fmt_difference(row.get("difference"), row.get("difference_interval")),
                        _fmt_p(row.get("p_value"), row.get("method"))] for row in comparison["rows"]])
    if report["comparisons"]:
        out += [f"Paired test: {(report.get('statistics') or STATISTICS)['paired_test']}.", ""]
    difficulties = sorted({d for run in runs for d in run["per_difficulty"]},
                          key=lambda d: DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 99)
    if difficulties:
        out += ["## By difficulty", ""]
        rows = []
        for run in runs:
            for difficulty in difficulties:
                block = run["per_difficulty"].get(difficulty)
                if block:
                    rows.append([run["label"], difficulty, _fmt(block["problems"]),
                                 *[_fmt(block["pass_at_k"].get(str(k))) for k in ks], _fmt(block["strict_accuracy"]),
                                 _fmt(block["test_case_average"])])
        out += _table(["run", "difficulty", "problems", *[f"pass@{k}" for k in ks], "strict acc.", "test-case avg."], rows)
    if "pass_at_k" in plots:
        out += [f"![pass@k by difficulty]({plots['pass_at_k']})", ""]
    budget_rows = []
    for run in runs:
        gen = run["generation"]
        if gen and gen.get("problems"):
            per = gen.get("budget_per_problem", {})
            budget_rows.append([run["label"], str(gen.get("strategy")), _num(per.get("model_calls")), _num(per.get("sequences")),
                                _num(per.get("completion_tokens")), _num(per.get("programs_judged")), _num(per.get("seconds")),
                                _known(per.get("cpu_seconds"), ".2f")])
    if budget_rows:
        out += ["## Generation budget (per problem)", "",
                "Plan sampling spends K plans + K x M judged programs + N final programs; compare strategies at "
                "equal cost with these numbers.", ""]
        out += _table(["run", "strategy", "model calls", "sequences", "tokens generated", "programs judged (example tests)",
                       "seconds", "CPU seconds"], budget_rows)
    if "plans" in plots:
        out += ["## Plan sampling", "", "Problems whose chosen plan (by the run's rule, among the first k sampled) had a "
                "program passing every public example test, as k grows (the paper's Figure 5, on example tests):", "",
                f"![solved vs sampled plans]({plots['plans']})", ""]
    for run in runs:
        chosen = report["selections"].get(run["label"]) or {}
        if not chosen:
            continue
        gen = run["generation"] or {}
        out += [f"## Plan selection: {run['label']}", ""]
        sel = gen.get("selection", {})
        if sel:
            out += [f"Rules applied: {', '.join(f'{rule} ({count})' for rule, count in sel.get('rules', {}).items())}; "
                    f"chosen plan had a program passing all example tests on {sel.get('chosen_plan_passed_examples')} "
                    f"of {gen.get('problems')} problems.", ""]
        judged = sum(score["programs"] for c in chosen.values() for score in c["selection"]["scores"])
        if judged:
            passed = sum(score["programs_passed"] for c in chosen.values() for score in c["selection"]["scores"])
            out += [f"Programs judged on the example tests to choose a plan (all sampled plans' programs): {passed} of "
                    f"{judged} ({100 * passed / judged:.1f}%) passed them all.", ""]
        out += ["<details><summary>Why each plan was chosen</summary>", ""]
        out += _table(["problem", "plan", "reason", "first line of the plan"],
                      [[pid, str(c["selection"]["chosen"]), c["selection"]["reason"],
                        (c["plan"].strip().splitlines() or [""])[0][:80]] for pid, c in sorted(chosen.items())])
        out += ["</details>", ""]
    out += ["## Run metadata", ""]
    meta_rows = [[key, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value]
                 for key, value in report["meta"].items()]
    for run in runs:
        meta_rows.append([run["label"], run_details(run)])
    out += _table(["item", "value"], meta_rows)
    return "\n".join(out)


# ---- plots --------------------------------------------------------------------------------------


def _plot_pass_at_k(report: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, ks = report["runs"], report["ks"][:3]
    if not ks:
        return False
    groups = sorted({d for run in runs for d in run["per_difficulty"]},
                    key=lambda d: DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 99) + ["all"]
    fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 3.6), squeeze=False)
    width = 0.8 / max(1, len(runs))
    for ax, k in zip(axes[0], ks):
        for i, run in enumerate(runs):
            values = [100 * (run["per_difficulty"].get(g, {}).get("pass_at_k", {}).get(str(k)) or 0.0) if g != "all"
                      else 100 * (run["pass_at_k"].get(str(k)) or 0.0) for g in groups]
            ax.bar([x + i * width for x in range(len(groups))], values, width, label=run["label"])
        ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(groups))], groups, rotation=15)
        ax.set_title(f"pass@{k}")
        ax.set_ylabel("% of problems")
        ax.set_ylim(0, max(5.0, 1.15 * max((p.get_height() for p in ax.patches), default=0.0)))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_plans(report: dict[str, Any], path: Path) -> list[str]:
    """Problems with an example-passing chosen plan against the number of plans sampled (Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, problems = {}, 1
    for label, chosen in report["selections"].items():
        if not chosen:
            continue
        rule = next(iter(chosen.values()))["selection"]["rule"]
        scores = [[PlanScore.from_record(s) for s in c["selection"]["scores"]] for c in chosen.values()]
        curves[label] = solved_by_plan_count(scores, rule if rule != "first" else "pass-share")
        problems = max(problems, len(scores))
    if not curves:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, counts in curves.items():
        ax.plot(range(1, len(counts) + 1), counts, marker="o", label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, problems)
    ax.set_xlabel("plans sampled per problem")
    ax.set_ylabel("problems solved on example tests")
    ax.set_title("Solved problems vs sampled plans")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    for label, counts in curves.items():
        report.setdefault("plans_curve", {})[label] = counts
    return list(curves)


def run_details(run: dict[str, Any]) -> str:
    """One line of a run's provenance: its files, model, data, seed and generation time."""
    gen = run["generation"] or {}
    config = gen.get("config") or {}
    details = {"results": run["results"], "samples": run["samples"], "model": config.get("model"),
               "data": (config.get("data") or {}).get("path"), "seed": config.get("seed"),
               "generation seconds": (gen.get("budget") or {}).get("seconds"),
               "evaluation seconds": (run.get("cost") or {}).get("wall_seconds"),
               **{k: v for k, v in run["meta"].items() if isinstance(v, (str, int, float))}}
    return ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)


def write_tables(paths: list[str], out: str, *, labels: list[str] | None = None,
                 meta: dict[str, Any] | None = None, controls: dict[str, str] | None = None) -> dict[str, Any]:
    """Write report.md, report.json and PNG plots beside it; return the report data."""
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report = build_report(paths, labels, meta, controls)
    stem = out_path.stem
    plots: dict[str, str] = {}
    pass_png = out_path.with_name(f"{stem}-pass-at-k.png")
    if _plot_pass_at_k(report, pass_png):
        plots["pass_at_k"] = pass_png.name
    plans_png = out_path.with_name(f"{stem}-plans.png")
    plotted = _plot_plans(report, plans_png)
    if plotted:
        plots["plans"] = plans_png.name
    report["plots"] = plots
    markdown = render_markdown(report, plots)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(markdown + "\n", encoding="utf-8")
    tmp.replace(out_path)
    write_json(out_path.with_suffix(".json"), report)
    report["markdown"] = markdown
    return report
