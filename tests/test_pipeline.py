"""`codeplan run`: shipped configs validate; the whole pipeline on a tiny model; re-runs skip work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.errors import InputError
from codeplan.pipeline import RunConfig, accelerate_command, load_run_config, run_pipeline

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    names = {path.name for path in CONFIGS}
    assert {"demo.yaml", "mbpp-qwen2.5-coder-0.5b.yaml", "apps-codet5-large.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates_with_every_stage(path: Path):
    cfg = load_run_config(path)
    stages = cfg.validate_stages()  # builds each stage's own config: a typo in any section fails here
    names = [stage.name for stage in stages]
    assert names[-1].startswith("evaluate-") and any(n.startswith("train-") for n in names)
    for target in cfg.runs():
        assert f"generate-{target.stage}" in names and f"evaluate-{target.stage}" in names


def test_bad_configs_name_the_problem(tmp_path: Path):
    base = yaml.safe_load(CONFIGS[0].read_text())
    for change, message in [({"train": {"max_step": 3}}, "max_step"),
                            ({"strategies": {"baseline": ["plan-sampling"], "codeplan": ["direct"]}}, "baseline"),
                            ({"generate": {"out": "x.jsonl"}}, "generate.out"),
                            ({"modes": []}, "mode")]:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(InputError, match=message):
            load_run_config(path).validate_stages()
    outcome = CliRunner().invoke(app, ["run", str(tmp_path / "missing.yaml")])
    assert outcome.exit_code == 2 and "not found" in outcome.output


def test_accelerate_launcher_command(tmp_path: Path):
    cfg = load_run_config(next(p for p in CONFIGS if "accelerate" in p.name))
    train_cfg = cfg.train_config("codeplan")
    command = accelerate_command(cfg, train_cfg, tmp_path / "train.yaml")
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and command[4] == "8"
    assert "--multi_gpu" in command and command[command.index("--config") + 1] == str(tmp_path / "train.yaml")
    assert command[command.index("--out") + 1].endswith("codeplan/model")


def _tiny_config(tmp_path: Path, model: Path) -> Path:
    config = {
        "name": "tiny", "out": str(tmp_path / "run"), "seed": 1,
        "data": {"train": {"path": "sample", "split": "train", "limit": 3},
                 "test": {"path": "sample", "split": "test", "limit": 2}},
        "distill": {"teacher": f"hf:{model}", "max_tokens": 12, "max_attempts": 1, "progress": False},
        "student": str(model), "modes": ["baseline", "codeplan"],
        "train": {"max_steps": 2, "micro_batch_size": 2, "grad_accum": 1, "max_source_tokens": 64,
                  "max_target_tokens": 32, "save_every": None, "val_fraction": 0.0, "progress": False},
        "strategies": {"baseline": ["direct"], "codeplan": ["plan-sampling"]},
        "generate": {"num_plans": 2, "codes_per_plan": 1, "num_samples": 2, "plan_max_tokens": 8,
                     "code_max_tokens": 8, "progress": False, "judge": {"timeout": 2.0}},
        "evaluate": {"k": [1, 2], "judge": {"timeout": 2.0}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_whole_pipeline_on_a_tiny_model_then_a_rerun_skips_everything(tiny_causal_lm: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]):
    config = _tiny_config(tmp_path, tiny_causal_lm)
    record = run_pipeline(str(config))
    run = tmp_path / "run"
    assert (run / "plans.jsonl").is_file()
    for mode, strategy in [("baseline", "direct"), ("codeplan", "plan-sampling")]:
        assert (run / mode / "model" / "train_summary.json").is_file()
        samples = [json.loads(line) for line in (run / mode / strategy / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 4 and all(s["strategy"] == strategy for s in samples)
        results = json.loads((run / mode / strategy / "results.json").read_text())
        assert set(results["pass_at_k"]) == {"1", "2"} and len(results["problems"]) == 2
    report = (run / "report.md").read_text()
    assert "codeplan/plan-sampling against baseline/direct" in report and "Plan selection" in report
    assert (run / "report-pass-at-k.png").is_file()
    page = (run / "report.html").read_text()  # the page to browse, with the test problems' statements
    assert page.count('<script type="application/json" id="p') == 2 and "codeplan/plan-sampling" in page
    assert '"statement":' in page
    assert not any(stage["skipped"] for stage in record["stages"].values())
    printed = capsys.readouterr().out
    assert "codeplan/plan-sampling" in printed and "complete" in printed  # the report is printed at the end

    # Second run: every stage is complete, nothing is redone, the report is rebuilt.
    again = run_pipeline(str(config))
    assert all(stage["skipped"] for stage in again["stages"].values())
    assert "skipped" in capsys.readouterr().out
    assert json.loads((run / "run.json").read_text())["wall_seconds_this_run"] < record["wall_seconds_this_run"]

    # Changed generation settings after the fact: refused, naming what to delete.
    data = yaml.safe_load(config.read_text())
    data["generate"]["num_samples"] = 3
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="generate-baseline-direct"):
        run_pipeline(str(config))


def test_run_config_defaults():
    cfg = RunConfig.model_validate({"name": "x", "data": {"train": {"path": "a"}, "test": {"path": "b"}},
                                    "plans": "sample", "student": "s"})
    assert cfg.run_dir == Path("runs/x")
    assert [(t.model, t.strategy, t.label) for t in cfg.runs()] == [("baseline", "direct", "baseline/direct"),
                                                                     ("codeplan", "plan-sampling", "codeplan/plan-sampling")]
    assert cfg.runs()[0].folder == Path("runs/x/baseline/direct")
    assert cfg.plans_path().name == "plans.jsonl" and cfg.plans_path().is_file()  # the bundled plans


ARMS = [{"name": "zero-shot", "model": "base", "strategy": "direct", "generate": {"num_samples": 1, "budget": 1}},
        {"name": "baseline-rerank", "model": "baseline", "strategy": "direct-rerank",
         "generate": {"num_samples": 1, "budget": 2}},
        {"name": "codeplan-plans", "model": "codeplan", "strategy": "plan-sampling",
         "generate": {"num_plans": 1, "codes_per_plan": 1, "num_samples": 1}, "control": "zero-shot"}]


def test_arms_are_checked_when_the_file_loads():
    base = {"name": "x", "data": {"train": {"path": "a"}, "test": {"path": "b"}}, "plans": "sample", "student": "s"}
    cfg = RunConfig.model_validate({**base, "arms": ARMS})
    assert [(t.label, t.model, t.folder) for t in cfg.runs()] == [
        ("zero-shot", "base", Path("runs/x/zero-shot")), ("baseline-rerank", "baseline", Path("runs/x/baseline-rerank")),
        ("codeplan-plans", "codeplan", Path("runs/x/codeplan-plans"))]
    # each arm's settings over the run's generate section; the untrained student is the one given
    gen = cfg.generate_config(cfg.runs()[1])
    assert (gen.strategy, gen.budget, gen.model, gen.out) == ("direct-rerank", 2, "runs/x/baseline/model",
                                                              "runs/x/baseline-rerank/samples.jsonl")
    assert cfg.generate_config(cfg.runs()[0]).model == "s"
    for change, message in [({"arms": ARMS, "strategies": {"baseline": ["direct"], "codeplan": ["direct"]}}, "not both"),
                            ({"arms": ARMS + [ARMS[0]]}, "'zero-shot' is named twice"),
                            ({"arms": [{**ARMS[1], "name": "baseline"}]}, "holds a student"),
                            ({"arms": [{**ARMS[2], "name": "a/b"}]}, "name"),
                            ({"arms": [ARMS[2]], "modes": ["baseline"]}, "does not train"),
                            ({"arms": [{**ARMS[1], "strategy": "plan-sampling"}]}, "cannot sample plans"),
                            ({"arms": [{**ARMS[0], "generate": {"strategy": "direct"}}]}, "strategy"),
                            ({"arms": [{**ARMS[0], "generate": {"num_sample": 2}}]}, "num_sample"),
                            ({"arms": [ARMS[2]]}, "must be another arm")]:
        with pytest.raises(ValueError, match=message):
            RunConfig.model_validate({**base, **change})


@pytest.mark.slow
def test_arms_run_each_with_its_settings_and_a_deleted_arm_is_redone(tiny_causal_lm: Path, tmp_path: Path):
    config = _tiny_config(tmp_path, tiny_causal_lm)
    data = yaml.safe_load(config.read_text())
    readme = tmp_path / "README.md"
    readme.write_text("# results\n<!-- summary:start -->\nold\n<!-- summary:end -->\nkept\n")
    del data["distill"], data["strategies"]
    data.update(plans="sample", arms=ARMS, print_report=False, summary_into=str(readme))
    config.write_text(yaml.safe_dump(data))
    record = run_pipeline(str(config))
    run = tmp_path / "run"
    assert [name for name in record["stages"] if name.startswith(("generate", "evaluate"))] == [
        f"{stage}-{arm['name']}" for arm in ARMS for stage in ("generate", "evaluate")]
    summaries = {arm["name"]: json.loads((run / arm["name"] / "samples.summary.json").read_text()) for arm in ARMS}
    assert summaries["zero-shot"]["config"]["model"] == str(tiny_causal_lm)
    assert summaries["zero-shot"]["budget_per_problem"]["programs"] == 1
    assert summaries["baseline-rerank"]["strategy"] == "direct-rerank"
    assert summaries["baseline-rerank"]["budget_per_problem"]["programs"] == 2
    assert summaries["codeplan-plans"]["config"]["num_plans"] == 1
    table = readme.read_text()
    assert "old" not in table and table.endswith("kept\n")
    assert table.index("| zero-shot |") < table.index("| baseline-rerank |") < table.index("| codeplan-plans |")
    assert "(vs zero-shot) |" in table  # the arm's control (besides the reference), in a column of its own

    shutil.rmtree(run / "baseline-rerank")  # to redo one arm, delete its folder: only it runs again
    again = run_pipeline(str(config))
    redone = sorted(name for name, stage in again["stages"].items() if not stage["skipped"])
    assert redone == ["evaluate-baseline-rerank", "generate-baseline-rerank"]
    assert (run / "baseline-rerank" / "results.json").is_file()

    # One arm on its own (the CLI's --arm): only its stages; an unknown name lists the runs there are.
    shutil.rmtree(run / "zero-shot")
    outcome = CliRunner().invoke(app, ["run", str(config), "--arm", "zero-shot"])
    assert outcome.exit_code == 0, outcome.output
    ran = json.loads((run / "run.json").read_text())["stages"]
    assert sorted(ran) == ["evaluate-zero-shot", "generate-zero-shot"] and not ran["generate-zero-shot"]["skipped"]
    meta = json.loads((run / "report.json").read_text())["meta"]["stage seconds"]
    assert "generate-codeplan-plans" in meta and "train-baseline" in meta  # every finished stage, not only this run's
    outcome = CliRunner().invoke(app, ["run", str(config), "--arm", "zero-shot-greedy"])
    assert outcome.exit_code == 2 and "zero-shot, baseline-rerank, codeplan-plans" in outcome.output


@pytest.mark.slow
def test_pipeline_on_llama_cpp_exports_each_student_and_generates_from_the_gguf(tiny_causal_lm: Path, tmp_path: Path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra `cpu`) is not installed; `make install` builds it")
    config = _tiny_config(tmp_path, tiny_causal_lm)
    data = yaml.safe_load(config.read_text())
    # The untrained student is exported too, so it and the trained one differ by training only.
    data.update(generate_backend="llamacpp", export_dtype="f32", modes=["codeplan"], plans="sample", print_report=False,
                arms=[ARMS[0], {"name": "codeplan-plans", "model": "codeplan", "strategy": "plan-sampling"}])
    del data["distill"], data["strategies"]
    config.write_text(yaml.safe_dump(data))
    record = run_pipeline(str(config))
    run = tmp_path / "run"
    assert list(record["stages"]) == ["export-base", "train-codeplan", "export-codeplan", "generate-zero-shot",
                                      "evaluate-zero-shot", "generate-codeplan-plans", "evaluate-codeplan-plans"]
    for arm, student in [("zero-shot", "base"), ("codeplan-plans", "codeplan")]:
        summary = json.loads((run / arm / "samples.summary.json").read_text())
        assert summary["config"]["model"] == f"llamacpp:{run / student / 'model-f32.gguf'}"
        assert len(json.loads((run / arm / "results.json").read_text())["problems"]) == 2
    assert all(stage["skipped"] for stage in run_pipeline(str(config))["stages"].values())
