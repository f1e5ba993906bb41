"""`codeplan report --html`: one self-contained HTML file to browse a run problem by problem.

The page shows the summary of `codeplan report` (arms side by side, plots, budget, metadata) and,
per problem, its statement and public tests and, per arm, the sampled plans with their selection
scores (the chosen one marked), the programs (highlighted with Pygments here, at build time) and
their verdicts, with the first failing hidden test's input, expected and actual output (the
`failure` snippet the judge keeps in results.json).

Invariants:
- Offline: CSS, JS (html.css / html.js beside this file), plots (base64 PNG) and
  data are inline; the page loads nothing from anywhere.
- Untrusted text (statements, plans, programs, outputs, labels) reaches the page only as JSON in
  <script type="application/json"> blocks, with every `<`, `>` and `&` written as a \\u escape
  (`embed_json`), so no block can end early or open a comment; the script puts it on the page
  with textContent only. The template substitutes nothing but those blocks.
- At size: one small index block is parsed at load; a problem's own block is parsed when it is
  opened. Programs travel as text plus run-length token classes, not as HTML.

Summary numbers come from `codeplan.report.build_report`. Where a run or a comparison row
carries more than it knows today (bootstrap intervals, paired tests), the page shows it: an
interval found by `_interval` under a run's `intervals` / `confidence_intervals` / `ci` mapping
(metric name -> [low, high] or {"low", "high"}), and every extra key of a comparison row
(e.g. `p_value`, `mcnemar`) as an extra column.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import tempfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from pygments.lexers import PythonLexer
from pygments.styles import get_style_by_name
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.formatters import HtmlFormatter

from codeplan.report import tables as report_tables
from codeplan.config import DataConfig
from codeplan.data import load_problems
from codeplan.errors import InputError, SetupError
from codeplan.jsonl import read_jsonl
from codeplan.problems import Problem
from codeplan.samples import sidecar_paths

ASSETS = Path(__file__).resolve().parent
# Bounds on what one problem's block holds (a generated program is bounded by its token budget;
# these only stop a runaway text from making the file unusable).
TEXT_CHARS = {"statement": 20_000, "plan": 6_000, "code": 20_000, "test": 2_000, "detail": 500}
VERDICT_ORDER = ("pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit")


# ---- safe embedding and highlighting -------------------------------------------------------------


def embed_json(value: Any) -> str:
    """JSON for a <script type="application/json"> block: no `<`, `>` or `&` survive (so neither
    `</script>` nor `<!--` can appear), nor the two line separators old parsers choke on."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def cut(text: Any, limit: int) -> str:
    text = "" if text is None else text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else f"{text[:limit]}\n... (cut at {limit} characters)"


TOKEN_CLASSES: list[str] = [""]  # index -> Pygments' short CSS class; 0 = plain text


@lru_cache(maxsize=None)
def _token_class(ttype: _TokenType) -> int:
    while ttype not in STANDARD_TYPES and ttype.parent is not None:
        ttype = ttype.parent
    name = STANDARD_TYPES.get(ttype, "")
    if name in ("", "w", "n"):  # plain text, whitespace and bare names are not coloured
        return 0
    if name not in TOKEN_CLASSES:
        TOKEN_CLASSES.append(name)
    return TOKEN_CLASSES.index(name)


_LEXER = PythonLexer(stripnl=False, ensurenl=False)


def highlight(code: str) -> tuple[str, list[int]]:
    """(the text shown, [class, length, class, length, ...]): consecutive runs of one token class,
    lengths in UTF-16 code units (what JavaScript's String.slice counts)."""
    text = code.replace("\r\n", "\n").replace("\r", "\n")  # as the lexer sees it
    runs: list[int] = []
    joined = []
    for ttype, value in _LEXER.get_tokens(text):
        joined.append(value)
        cls, size = _token_class(ttype), len(value.encode("utf-16-le")) // 2
        if runs and runs[-2] == cls:
            runs[-1] += size
        elif size:
            runs += [cls, size]
    if "".join(joined) != text:  # never expected; plain text rather than misplaced colours
        return text, [0, len(text.encode("utf-16-le")) // 2]
    return text, runs


def highlight_css() -> str:
    return HtmlFormatter(style=get_style_by_name("default")).get_style_defs(".hl")


# ---- reading the runs ------------------------------------------------------------------------------


def _load_problems(results: list[dict[str, Any]], data: DataConfig | list[Problem] | None,
                   notes: list[str]) -> dict[str, Problem]:
    """Problems by id: from `data` when given, else from each results.json's recorded data path.
    A run whose problems cannot be read still shows its verdicts and programs (a note says why
    the statements are missing)."""
    if isinstance(data, list):
        return {problem.id: problem for problem in data}
    configs = [data] if data is not None else []
    if data is None:
        for paths in {str((r.get("config") or {}).get("data") or ""): None for r in results}:
            if not paths:
                continue
            if paths.startswith("hub:"):  # a report must not reach for the network
                notes.append(f"statements of {paths} not shown (hub data; pass the data on disk)")
                continue
            configs.append(DataConfig(path=paths))
    problems: dict[str, Problem] = {}
    for cfg in configs:
        try:
            for problem in load_problems(cfg):
                problems.setdefault(problem.id, problem)
        except (InputError, SetupError, OSError) as err:
            notes.append(f"statements of {cfg.path} not shown: {err}")
    return problems


def _samples_by_problem(samples: Path | None) -> dict[str, list[dict[str, Any]]]:
    """samples.jsonl lines grouped by problem, in file order (the order results.json judged them)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if samples is not None:
        for row in read_jsonl(samples, skip_torn_tail=True):
            grouped[str(row.get("problem_id"))].append(row)
    return grouped


def _plans_by_problem(samples: Path | None) -> dict[str, dict[str, Any]]:
    if samples is None:
        return {}
    plans = sidecar_paths(samples)[0]
    if not plans.is_file():
        return {}
    return {str(row.get("problem_id")): row for row in read_jsonl(plans, skip_torn_tail=True)}


def _arm_problem(outcome: dict[str, Any], rows: list[dict[str, Any]], plans: dict[str, Any] | None) -> dict[str, Any]:
    """One arm's view of one problem: its programs with verdicts, its plans with scores."""
    judged = outcome.get("samples") or []
    samples = []
    for index in range(max(len(judged), len(rows))):
        verdict = judged[index] if index < len(judged) else {}
        row = rows[index] if index < len(rows) else {}
        sample: dict[str, Any] = {"verdict": verdict.get("verdict", "not judged"), "tp": verdict.get("tests_passed"),
                                  "tt": verdict.get("tests_total"), "detail": cut(verdict.get("detail"), TEXT_CHARS["detail"])}
        if "code" in row:
            sample["code"], sample["hl"] = highlight(cut(row["code"], TEXT_CHARS["code"]))
        if row.get("plan_index") is not None:
            sample["plan"] = row["plan_index"]
        failure = verdict.get("failure")
        if isinstance(failure, dict):
            sample["failure"] = {key: cut(failure.get(key), TEXT_CHARS["test"]) if failure.get(key) is not None else None
                                 for key in ("input", "expected", "output", "stderr")} | {"test": failure.get("test")}
        samples.append(sample)
    arm: dict[str, Any] = {"n": outcome.get("n", len(samples)), "c": outcome.get("c", 0), "samples": samples}
    selection = (plans or {}).get("selection") or next((r["selection"] for r in rows if r.get("selection")), None)
    if selection:
        arm["selection"] = {key: selection.get(key) for key in ("chosen", "rule", "reason")}
        scores = {s.get("index"): s for s in selection.get("scores") or []}
        candidates = (plans or {}).get("candidates")
        if candidates:
            arm["plans"] = [{"index": c.get("plan_index"), "text": cut(c.get("plan"), TEXT_CHARS["plan"]),
                             "score": c.get("score") or scores.get(c.get("plan_index")),
                             "verdicts": [p.get("verdict", "") for p in c.get("programs") or []]} for c in candidates]
        else:  # only the chosen plan's text is in samples.jsonl
            chosen_text = next((r.get("plan") for r in rows if r.get("plan") is not None), None)
            arm["plans"] = [{"index": index, "score": score,
                             "text": cut(chosen_text, TEXT_CHARS["plan"]) if index == selection.get("chosen") else None}
                            for index, score in sorted(scores.items(), key=lambda item: item[0])]
    return arm


def _test_pair(test: Any) -> list[str]:
    def shown(value: Any) -> str:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return "\n".join(value)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    return [cut(shown(test.input), TEXT_CHARS["test"]), cut(shown(test.output), TEXT_CHARS["test"]) if test.output is not None else ""]


# ---- the summary as tables ------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return report_tables._fmt(value)


def _interval(sources: tuple[dict[str, Any], ...], *names: str) -> str | None:
    """"[low, high]" in percent, if the run (its report entry or its results.json) carries an
    interval for one of `names`."""
    for key, source in ((key, source) for source in sources for key in ("intervals", "confidence_intervals", "ci")):
        table = source.get(key)
        if not isinstance(table, dict):
            continue
        for name in names:
            value = table.get(name)
            if isinstance(value, dict):
                value = [value.get("low", value.get("lo")), value.get("high", value.get("hi"))]
            if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
                return f"[{100 * value[0]:.2f}, {100 * value[1]:.2f}]"
    return None


def _cell(text: str, sub: str | None = None, cls: str = "") -> dict[str, str]:
    return {"t": text, **({"s": sub} if sub else {}), **({"c": cls} if cls else {})}


def _extra(value: Any, key: str = "") -> str:
    """A comparison field as text; differences (shares) in signed percentage points, like the rest."""
    if key == "difference" and isinstance(value, (int, float)):
        return f"{100 * value:+.2f} pts"
    if key == "difference_interval" and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"[{100 * value[0]:+.2f}, {100 * value[1]:+.2f}] pts"
    if isinstance(value, float):
        return f"{value:.4g}" if not math.isnan(value) else "n/a"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def summary_tables(report: dict[str, Any], results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The report's numbers as tables of cells ({t: text, s: interval or note, c: css class});
    `results` (the runs' results.json, in order) are searched for intervals too."""
    runs, ks = report["runs"], report["ks"]
    labels = [run["label"] for run in runs]
    sources = [(run, raw) for run, raw in zip(runs, results or [{}] * len(runs))]
    rows = []
    for k in ks:
        rows.append([_cell(f"pass@{k}")] + [_cell(_pct(run["pass_at_k"].get(str(k))),
                                                  _interval(src, f"pass@{k}", str(k), f"pass_at_k.{k}")) for run, src in zip(runs, sources)])
    rows.append([_cell("strict accuracy")] + [_cell(_pct(run["strict_accuracy"]), _interval(src, "strict_accuracy", "strict accuracy"))
                                              for run, src in zip(runs, sources)])
    rows.append([_cell("test-case average")] + [_cell(_pct(run["test_case_average"]),
                                                      _interval(src, "test_case_average", "test-case average"))
                                                for run, src in zip(runs, sources)])
    rows.append([_cell("problems (solved by any program)")] + [
        _cell(f"{report_tables._fmt(run['problems'])} ({report_tables._fmt(run['solved'])})") for run in runs])
    rows.append([_cell("programs per problem")] + [_cell(report_tables._num(run["samples_per_problem"])) for run in runs])
    budget_keys = [("model_calls", "model calls"), ("sequences", "sequences generated"), ("prompt_tokens", "prompt tokens"),
                   ("completion_tokens", "tokens generated"), ("programs_judged", "programs judged (public tests)"),
                   ("seconds", "generation seconds"), ("cpu_seconds", "generation CPU seconds")]
    for key, name in budget_keys:
        values = [((run["generation"] or {}).get("budget_per_problem") or {}).get(key) for run in runs]
        if any(v is not None for v in values):
            rows.append([_cell(f"{name} per problem")] + [_cell(report_tables._num(v)) for v in values])
    strategies = [(run["generation"] or {}).get("strategy") for run in runs]
    if any(strategies):
        rows.insert(0, [_cell("strategy")] + [_cell(str(s or "n/a")) for s in strategies])
    tables = [{"title": "Results on the hidden tests", "id": "results",
               "note": "Percent: pass@k (unbiased estimator), strict accuracy (every hidden test passed), test-case "
                       "average (share of hidden tests passed); intervals in brackets where the run has them. Budget "
                       "from each run's samples.summary.json.",
               "header": ["", *labels], "rows": rows}]
    verdicts = [run.get("verdicts") or {} for run in runs]
    names = sorted({name for v in verdicts for name in v},
                   key=lambda n: (VERDICT_ORDER.index(n) if n in VERDICT_ORDER else 99, n))
    if names:
        tables.append({"title": "Verdicts of all judged programs", "id": "verdicts", "header": ["verdict", *labels],
                       "rows": [[_cell(name, cls=f"v-{name}")] + [_cell(str(v.get(name, 0))) for v in verdicts] for name in names]})
    for comparison in report["comparisons"]:
        known = {"metric", "reference", "value", "relative_change"}
        extra = sorted({key for row in comparison["rows"] for key in row if key not in known})
        notes = [f"{key}: {_extra(value)}" for key, value in comparison.items() if key not in ("reference", "run", "rows")]
        tables.append({"title": f"{comparison['run']} against {comparison['reference']}", "id": "comparison",
                       **({"note": "; ".join(notes)} if notes else {}),
                       "header": ["metric", comparison["reference"], comparison["run"], "relative change", *extra],
                       "rows": [[_cell(row["metric"]), _cell(_pct(row["reference"])), _cell(_pct(row["value"])),
                                 _cell(report_tables._fmt_change(row["relative_change"], row["value"], row["reference"]))]
                                + [_cell(_extra(row.get(key), key) if key in row else "") for key in extra]
                                for row in comparison["rows"]]})
    difficulty_rows = []
    for run in runs:
        for name, block in run["per_difficulty"].items():
            difficulty_rows.append([_cell(run["label"]), _cell(name), _cell(report_tables._fmt(block["problems"]))]
                                   + [_cell(_pct(block["pass_at_k"].get(str(k)))) for k in ks]
                                   + [_cell(_pct(block["strict_accuracy"])), _cell(_pct(block["test_case_average"]))])
    if difficulty_rows:
        tables.append({"title": "By difficulty", "id": "difficulty",
                       "header": ["run", "difficulty", "problems", *[f"pass@{k}" for k in ks], "strict acc.", "test-case avg."],
                       "rows": difficulty_rows})
    meta_rows = [[_cell(str(key)), _cell(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))]
                 for key, value in report["meta"].items()]
    for run in runs:
        meta_rows.append([_cell(run["label"]), _cell(report_tables.run_details(run))])
    tables.append({"title": "Run metadata", "id": "meta", "header": ["item", "value"], "rows": meta_rows})
    return tables


def _plots(report: dict[str, Any]) -> list[dict[str, str]]:
    """The markdown report's plots, as base64 PNGs."""
    plots = []
    with tempfile.TemporaryDirectory(prefix="codeplan-report-") as folder:
        for name, title, draw in (("pass-at-k", "pass@k by difficulty", report_tables._plot_pass_at_k),
                                  ("plans", "Problems solved on the public tests vs plans sampled", report_tables._plot_plans)):
            path = Path(folder) / f"{name}.png"
            if draw(report, path):
                plots.append({"title": title, "png": base64.b64encode(path.read_bytes()).decode("ascii")})
    return plots


# ---- the page ----------------------------------------------------------------------------------------


def build_html(paths: list[str], labels: list[str] | None = None, meta: dict[str, Any] | None = None,
               data: DataConfig | list[Problem] | None = None, controls: dict[str, str] | None = None,
               report: dict[str, Any] | None = None) -> str:
    """The whole page as one string; `report` is build_report's data for these same arguments,
    when the caller already has it (the paired bootstraps are the slow part)."""
    if report is None:
        report = report_tables.build_report(paths, labels, meta, controls)
    results = [report_tables.load_results(path) for path in paths]
    notes: list[str] = []
    problems = _load_problems(results, data, notes)
    arm_labels = [run["label"] for run in report["runs"]]
    order: dict[str, None] = {}
    for result in results:
        order.update(dict.fromkeys(result.get("problems") or {}))
    # The data's order (the benchmark's), then any problem the data lacks in the runs' order.
    ids = [pid for pid in problems if pid in order] + [pid for pid in order if pid not in problems]
    arm_rows = [_samples_by_problem(Path(run["samples"]) if run["samples"] else None) for run in report["runs"]]
    arm_plans = [_plans_by_problem(Path(run["samples"]) if run["samples"] else None) for run in report["runs"]]
    index_rows, blocks = [], []
    for number, pid in enumerate(ids):
        problem = problems.get(pid)
        arms, marks = [], []
        difficulty = problem.difficulty if problem else None
        for result, rows, plans in zip(results, arm_rows, arm_plans):
            outcome = (result.get("problems") or {}).get(pid)
            if outcome is None:
                arms.append(None)
                marks.append(None)
                continue
            difficulty = difficulty or outcome.get("difficulty")
            arm = _arm_problem(outcome, rows.get(pid, []), plans.get(pid))
            arms.append(arm)
            seen = {s["verdict"] for s in arm["samples"]}
            marks.append([arm["c"], arm["n"], sorted(seen)])
        block: dict[str, Any] = {"id": pid, "difficulty": difficulty, "arms": arms}
        if problem is not None:
            block.update(kind=problem.kind, source=problem.source, entry_point=problem.entry_point,
                         statement=cut(problem.statement, TEXT_CHARS["statement"]),
                         starter_code=cut(problem.starter_code, TEXT_CHARS["code"]),
                         public=[_test_pair(test) for test in problem.public_tests[:10]],
                         public_total=len(problem.public_tests), hidden_total=len(problem.hidden_tests))
        title = (problem.statement.strip().splitlines() or [""])[0][:120] if problem else ""
        index_rows.append([pid, difficulty or "unknown", title, marks])
        blocks.append(f'<script type="application/json" id="p{number}">{embed_json(block)}</script>')
    summary = {"title": report["meta"].get("run") or "codeplan report", "arms": arm_labels, "reference": report["reference"],
               "tables": summary_tables(report, results), "plots": _plots(report), "notes": notes,
               "verdicts": list(VERDICT_ORDER), "difficulties": list(report_tables.DIFFICULTY_ORDER)}
    index = {"problems": index_rows}
    page = (ASSETS / "html.template.html").read_text(encoding="utf-8")
    script = (ASSETS / "html.js").read_text(encoding="utf-8")
    parts = {"CSS": (ASSETS / "html.css").read_text(encoding="utf-8") + highlight_css(), "JS": script,
             # The Content-Security-Policy lets exactly this script run: a second line of defence
             # should any markup ever slip into the page.
             "SCRIPT_HASH": "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii"),
             "SUMMARY": embed_json(summary), "INDEX": embed_json(index), "CLASSES": embed_json(TOKEN_CLASSES),
             "PROBLEMS": "\n".join(blocks)}
    # One pass over the template: text put in is never searched for placeholders again.
    return re.sub(r"/\*(CSS|JS|SCRIPT_HASH|SUMMARY|INDEX|CLASSES|PROBLEMS)\*/", lambda match: parts[match.group(1)], page)


def write_html(paths: list[str], out: str | Path, *, labels: list[str] | None = None,
               meta: dict[str, Any] | None = None, data: DataConfig | list[Problem] | None = None,
               controls: dict[str, str] | None = None, report: dict[str, Any] | None = None) -> Path:
    """Write the report page to `out` (atomically: a reader never sees half a page)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = build_html(paths, labels, meta, data, controls, report)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
