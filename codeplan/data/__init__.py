"""Benchmark data -> `Problem`s: one module per source format, format detection, public tests.

Public API:
- `load_problems(cfg)`: file, folder, alias (`sample`, `humaneval`) or `hub:DATASET_ID` -> problems.
- `SAMPLE_PROBLEMS`, `SAMPLE_PLANS`: the bundled sample set (canonical problems, backward plans).
- `inspect_problems(cfg, as_json)`, `convert_problems(cfg, out)`: the `codeplan data` commands.
- `load_folder_plans(path)`: the plans.json files of an APPS folder layout, as plans.jsonl records.
"""

from __future__ import annotations

from codeplan.data.apps import load_folder_plans
from codeplan.data.inspect import convert_problems, inspect_problems, summarize
from codeplan.data.loading import FORMATS, SAMPLE_PLANS, SAMPLE_PROBLEMS, detect_format, load_problems, select

__all__ = [
    "FORMATS",
    "SAMPLE_PLANS",
    "SAMPLE_PROBLEMS",
    "convert_problems",
    "detect_format",
    "inspect_problems",
    "load_folder_plans",
    "load_problems",
    "select",
    "summarize",
]
