"""`codeplan report`: what runs scored, as markdown and JSON tables with PNG plots (tables.py), and
as one self-contained HTML page to browse problem by problem (html.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeplan.config import DataConfig
from codeplan.report.tables import (build_report, load_results, marked_summary, render_markdown, replace_summary,
                                    summary_table, write_tables)
from codeplan.report.html import write_html  # noqa: I001 - after tables, which it reads

__all__ = ["build_report", "load_results", "marked_summary", "render_markdown", "replace_summary", "summary_table",
           "write_html", "write_report", "write_tables"]


def write_report(paths: list[str], out: str | Path, *, labels: list[str] | None = None,
                 meta: dict[str, Any] | None = None, html: str | Path | None = None,
                 data: DataConfig | None = None, summary_into: str | Path | None = None,
                 controls: dict[str, str] | None = None) -> dict[str, Any]:
    """report.md, report.json and the plots at `out`; with `html`, the page too (statements and
    public tests from `data`, else from the data path each results.json records); with
    `summary_into`, the Summary table also replaces the marked block of that markdown file;
    `controls` (label -> label) adds each run's comparison with its own control."""
    report = write_tables(paths, str(out), labels=labels, meta=meta, controls=controls)
    if html is not None:
        write_html(paths, html, labels=labels, meta=meta, data=data, controls=controls, report=report)
    if summary_into is not None:
        replace_summary(summary_into, report)
    return report
