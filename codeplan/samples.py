"""The samples file that generate writes and evaluate and report read, with its two sidecars.

    samples.jsonl          one program a line; the N lines of a problem are written together
    samples.plans.jsonl    plan sampling: every candidate plan of a problem with its programs' verdicts
    samples.summary.json   totals and the budget spent

Invariants: a problem's lines are either all on file or none of them (`finished_problems` drops the
lines of a problem that a killed run left unfinished), so a resumed run never duplicates a sample.
Each problem's cost travels on its own lines (`budget`), so totals survive any number of resumes; a
budget field that some problem did not record (a file written before codeplan recorded it) totals
to None, "unknown", never to a count of what was recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import codeplan
from codeplan.errors import InputError
from codeplan.jsonl import read_jsonl, repair_torn_tail, write_jsonl


@dataclass
class Budget:
    """What a problem cost, so strategies compare at equal cost."""

    model_calls: int = 0  # prompts sent to the model
    sequences: int = 0  # continuations generated (plans and programs)
    programs: int = 0  # programs generated (what `budget` counts)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    programs_judged: int = 0
    seconds: float = 0.0  # wall time: the problem's share of its chunk
    # CPU time: the problem's share of the generating process's CPU over its chunk (every thread: a
    # local model's too, not a server's or another process's), plus its own judged programs' CPU.
    cpu_seconds: float = 0.0

    def add_completion(self, completion: Any, *, programs: bool = False) -> None:
        self.model_calls += 1
        self.sequences += len(completion.texts)
        if programs:
            self.programs += len(completion.texts)
        self.prompt_tokens += int(completion.prompt_tokens or 0)
        self.completion_tokens += int(completion.completion_tokens or 0)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["seconds"] = round(self.seconds, 3)
        record["cpu_seconds"] = round(self.cpu_seconds, 3)
        return record


BUDGET_KEYS = tuple(Budget.__dataclass_fields__)
_SECONDS_KEYS = ("seconds", "cpu_seconds")


def sidecar_paths(out: str | Path) -> tuple[Path, Path]:
    """(plans file, summary file) written beside samples.jsonl."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".plans.jsonl"), out.with_name(stem + ".summary.json")


def finished_problems(out: str | Path, strategy: str | None = None, num_samples: int | None = None) -> set[str]:
    """Problems whose samples are all in `out`; lines of unfinished problems (a killed run) are
    removed, so the re-run writes them once. Refuses a file made with another strategy or N."""
    out = Path(out)
    if not out.exists():
        return set()
    repair_torn_tail(out)
    records = read_jsonl(out)
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for number, record in enumerate(records, start=1):
        if "problem_id" not in record or "code" not in record:
            raise InputError("not a samples file: a record lacks problem_id or code", path=out, line=number)
        if strategy and record.get("strategy") not in (None, strategy):
            raise InputError(f"holds samples of strategy '{record.get('strategy')}', not '{strategy}'; "
                             "choose another --out", path=out, line=number, field="strategy")
        if num_samples is not None and int(record.get("problem_samples", num_samples)) != num_samples:
            raise InputError(f"holds {record.get('problem_samples')} samples per problem, not {num_samples}; "
                             "choose another --out", path=out, line=number, field="problem_samples")
        by_problem[str(record["problem_id"])].append(record)
    done = {pid for pid, rows in by_problem.items()
            if len(rows) == int(rows[0].get("problem_samples", len(rows)))}
    if len(done) != len(by_problem):
        write_jsonl(out, [r for r in records if str(r["problem_id"]) in done])
    plans_path, _ = sidecar_paths(out)
    if plans_path.exists():
        repair_torn_tail(plans_path)
        kept: dict[str, dict[str, Any]] = {}
        rows = read_jsonl(plans_path)
        for row in rows:
            if str(row.get("problem_id")) in done:
                kept[str(row["problem_id"])] = row
        if len(kept) != len(rows):
            write_jsonl(plans_path, list(kept.values()))
    return done


def summarize_samples(out: str | Path, *, strategy: str | None = None, config: dict[str, Any] | None = None,
                      seconds: float | None = None, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Totals over a samples file: problems, samples, budget spent, chosen-plan statistics.
    `config` (the generate settings, as JSON) and `seconds` (this run's wall time) are recorded."""
    rows = read_jsonl(out) if Path(out).exists() else []
    if ids is not None:
        keep = set(ids)
        rows = [r for r in rows if r["problem_id"] in keep]
    per_problem: dict[str, dict[str, Any]] = {}
    for row in rows:
        per_problem.setdefault(row["problem_id"], row)
    totals: dict[str, float | int | None] = {}
    for key in BUDGET_KEYS:
        recorded = [(row.get("budget") or {}).get(key) for row in per_problem.values()]
        # A problem that never recorded a field (an older file) makes its total unknown, not smaller.
        total = None if any(value is None for value in recorded) else sum(recorded, 0.0 if key in _SECONDS_KEYS else 0)
        totals[key] = round(total, 3) if total is not None and key in _SECONDS_KEYS else total
    problems = len(per_problem)
    summary: dict[str, Any] = {
        "samples": str(out), "strategy": rows[0].get("strategy") if rows else strategy,
        "problems": problems, "programs": len(rows), "budget": totals,
        "budget_per_problem": ({key: None if value is None else round(value / problems, 3) for key, value in totals.items()}
                               if problems else {}),
        "codeplan_version": codeplan.__version__,
    }
    selected = [row["selection"] for row in per_problem.values() if row.get("selection")]
    if selected:
        summary["selection"] = {
            "rules": dict(Counter(s["rule"] for s in selected)),
            "chosen_plan_passed_examples": sum(1 for s in selected if s["scores"][s["chosen"]]["programs_passed"] > 0),
        }
    if config is not None:
        summary["config"] = config
    if seconds is not None:
        summary["wall_seconds_this_run"] = round(seconds, 3)
    return summary
