"""The MBPP experiment's README table is the report's Summary table rebuilt from the committed
results, in the order of run.yaml's arms: a README edited by hand, or not rebuilt after new
results, fails here."""

from __future__ import annotations

from pathlib import Path

from codeplan.pipeline import load_run_config
from codeplan.report import build_report, marked_summary, summary_table

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "mbpp"


def test_run_file_validates_and_the_reference_arm_comes_first(monkeypatch):
    monkeypatch.chdir(ROOT)  # the run file's paths are from the repository root
    cfg = load_run_config(EXPERIMENT / "run.yaml")
    cfg.validate_stages()
    arms = cfg.runs()
    assert arms[0].label == "baseline-direct" and cfg.run_dir == Path("experiments/mbpp/out")
    sampled = [cfg.generate_config(arm) for arm in arms if arm.label != "zero-shot-greedy"]
    assert {gen.budget for gen in sampled} == {8}  # every sampled arm spends the same budget


def test_readme_table_is_the_summary_of_the_committed_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_run_config(EXPERIMENT / "run.yaml")
    done = [arm for arm in cfg.runs() if cfg.results_path(arm).is_file()]
    assert done, "no committed results.json among run.yaml's arms"
    report = build_report([str(cfg.results_path(arm)) for arm in done], labels=[arm.label for arm in done],
                          controls=cfg.controls())
    expected = summary_table(report)[:-1]  # the table without the blank line after it
    assert marked_summary(EXPERIMENT / "README.md") == expected, (
        "experiments/mbpp/README.md's summary table is stale: rebuild it with "
        "`codeplan run experiments/mbpp/run.yaml --arm ARM` (any arm that is done: it rebuilds the report) or "
        "`codeplan report` on the arms' results.json files with `--summary-into experiments/mbpp/README.md`")
