"""`codeplan run`: shipped configs validate; the whole pipeline on a tiny model; re-runs skip work."""

from __future__ import annotations

import json
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
    for mode, strategy in cfg.runs():
        assert f"generate-{mode}-{strategy}" in names


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
    assert cfg.run_dir == Path("runs/x") and cfg.runs() == [("baseline", "direct"), ("codeplan", "plan-sampling")]
    assert cfg.plans_path().name == "plans.jsonl" and cfg.plans_path().is_file()  # the bundled plans


@pytest.mark.slow
def test_pipeline_on_llama_cpp_exports_each_student_and_generates_from_the_gguf(tiny_causal_lm: Path, tmp_path: Path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra `cpu`) is not installed; `make install` builds it")
    config = _tiny_config(tmp_path, tiny_causal_lm)
    data = yaml.safe_load(config.read_text())
    data.update(generate_backend="llamacpp", export_dtype="f32", modes=["codeplan"],
                strategies={"codeplan": ["plan-sampling"]}, plans="sample", print_report=False)
    del data["distill"]
    config.write_text(yaml.safe_dump(data))
    record = run_pipeline(str(config))
    run = tmp_path / "run"
    assert list(record["stages"]) == ["train-codeplan", "export-codeplan", "generate-codeplan-plan-sampling",
                                      "evaluate-codeplan-plan-sampling"]
    assert (run / "codeplan" / "model-f32.gguf").is_file()
    summary = json.loads((run / "codeplan" / "plan-sampling" / "samples.summary.json").read_text())
    assert summary["config"]["model"] == f"llamacpp:{run / 'codeplan' / 'model-f32.gguf'}"
    assert len(json.loads((run / "codeplan" / "plan-sampling" / "results.json").read_text())["problems"]) == 2
    assert all(stage["skipped"] for stage in run_pipeline(str(config))["stages"].values())
