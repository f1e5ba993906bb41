"""`codeplan data inspect` (counts and test statistics) and `codeplan data convert` (to canonical JSONL)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from codeplan.config import DataConfig
from codeplan.data.loading import load_problems
from codeplan.problems import Problem, write_problems


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(sum(values) / len(values), 2), "max": max(values)}


def summarize(problems: list[Problem]) -> dict[str, Any]:
    """Counts by split, difficulty, kind and source; tests per problem; share with public tests."""
    with_public = sum(1 for p in problems if p.public_tests)
    return {
        "problems": len(problems),
        "by_split": dict(Counter(p.split or "unknown" for p in problems)),
        "by_difficulty": dict(Counter(p.difficulty or "unknown" for p in problems)),
        "by_kind": dict(Counter(p.kind for p in problems)),
        "by_source": dict(Counter(p.source for p in problems)),
        "public_tests": _stats([len(p.public_tests) for p in problems]),
        "hidden_tests": _stats([len(p.hidden_tests) for p in problems]),
        "solutions": _stats([len(p.solutions) for p in problems]),
        "with_public_tests": with_public,
        "with_public_tests_share": round(with_public / len(problems), 4) if problems else 0.0,
        "with_solutions": sum(1 for p in problems if p.solutions),
        "with_starter_code": sum(1 for p in problems if p.starter_code.strip()),
    }


def inspect_problems(cfg: DataConfig, as_json: bool = False) -> dict[str, Any]:
    """Print the summary of the selected problems: one JSON object, or a readable table."""
    summary = summarize(load_problems(cfg))
    summary["path"] = cfg.path
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _print_table(summary)
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['path']}: {summary['problems']} problems", show_header=True)
    table.add_column("what")
    table.add_column("value", overflow="fold")

    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{key} {value}" for key, value in sorted(mapping.items())) or "-"

    def stats(values: dict[str, float]) -> str:
        return f"min {values['min']}  mean {values['mean']}  max {values['max']}"

    table.add_row("split", counts(summary["by_split"]))
    table.add_row("difficulty", counts(summary["by_difficulty"]))
    table.add_row("kind", counts(summary["by_kind"]))
    table.add_row("source", counts(summary["by_source"]))
    table.add_row("public tests / problem", stats(summary["public_tests"]))
    table.add_row("hidden tests / problem", stats(summary["hidden_tests"]))
    table.add_row("solutions / problem", stats(summary["solutions"]))
    share = summary["with_public_tests_share"] * 100
    table.add_row("with public tests", f"{summary['with_public_tests']} ({share:.1f}%)")
    table.add_row("with starter code", str(summary["with_starter_code"]))
    Console().print(table)


def convert_problems(cfg: DataConfig, out: Path) -> int:
    """Write the selected problems as canonical JSONL (atomically); returns how many were written."""
    problems = load_problems(cfg)
    write_problems(out, problems)
    print(f"wrote {len(problems)} problems to {out}")
    return len(problems)
