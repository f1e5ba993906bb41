"""`codeplan run CONFIG.yaml`: distill -> train (each mode) -> generate (each strategy) -> evaluate ->
report, everything under one run folder, each stage skipped when its output is complete.

Layout of a run folder (runs/NAME by default):

    plans.jsonl                          distill (skipped when the config names existing `plans`)
    <mode>/model/                        train (train_summary.json inside marks it complete)
    <mode>/model-<dtype>.gguf            export, when generate_backend is llamacpp (or auto finds it)
    <mode>/<strategy>/samples.jsonl      generate (+ samples.plans.jsonl, samples.summary.json)
    <mode>/<strategy>/results.json       evaluate
    <arm>/samples.jsonl, results.json    the same, per arm, when the file lists `arms` instead of `strategies`
    base/model-<dtype>.gguf              export of the untrained student, for arms of model `base` (llamacpp)
    report.md, report.json, *.png        report (rebuilt on every run: it is cheap)
    report.html                          the same, and every problem's plans, programs and verdicts, to browse
    run.json                             what ran, with settings, versions and wall times
    .stages/<stage>.json                 completion markers: the stage's settings and wall time

`strategies` runs each strategy on each trained student with the one `generate` section. `arms`
names each generate + evaluate run instead: its student (`base`, the untrained student, or a
trained mode), its strategy, and the generate settings it changes (K, M, N, budget, temperature),
so an experiment's arms at different settings are one file. The report lists the runs in file order.

A stage whose marker exists is skipped; one whose settings changed since is refused with the
folder to delete, because its output would silently mix two settings otherwise. A stage that was
interrupted is simply run again: every stage resumes its own partial output.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, model_validator
from rich.console import Console
from rich.markdown import Markdown

import codeplan
from codeplan.config import DataConfig, StageConfig, read_yaml, validate_config
from codeplan.data import SAMPLE_PLANS
from codeplan.distill import DistillConfig, distill
from codeplan.errors import InputError, SetupError
from codeplan.evaluate import EvaluateConfig, evaluate
from codeplan.export import ExportConfig, export_gguf
from codeplan.generate import GenerateConfig, generate
from codeplan.jsonl import write_json
from codeplan.modeling import resolve_model_source
from codeplan.output_lock import hold_output
from codeplan.report import write_report
from codeplan.strategies import Strategy
from codeplan.train import TrainConfig, is_trained, train

Mode = Literal["codeplan", "baseline"]
BASE = "base"  # an arm's model: the student as given, untrained

# What the pipeline fills in for each stage (from the run's data, folders and modes).
FILLED = {"distill": {"data", "out"}, "train": {"data", "plans", "student", "out", "mode"},
          "generate": {"data", "model", "out", "strategy"}, "evaluate": {"data", "samples", "out"}}


def section_model(config: type[StageConfig], stage: str) -> type[StageConfig]:
    """A run file's section for a stage: the stage's own config minus what the pipeline fills in,
    so a section is checked field by field (types, unknown keys, old spellings) when the file loads."""
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in config.model_fields.items()
                              if name not in FILLED[stage]}
    model = create_model(f"{config.__name__.removesuffix('Config')}Section", __base__=StageConfig, **fields)
    model.renamed = config.renamed
    return model


DistillSection = section_model(DistillConfig, "distill")
TrainSection = section_model(TrainConfig, "train")
GenerateSection = section_model(GenerateConfig, "generate")
EvaluateSection = section_model(EvaluateConfig, "evaluate")


class RunData(StageConfig):
    """Problems to train on (distill and train) and to test on (generate and evaluate)."""

    train: DataConfig
    test: DataConfig


class TrainLauncher(StageConfig):
    """How training runs: in this process, or through `accelerate launch` (multi-GPU / multi-node)."""

    kind: Literal["in-process", "accelerate"] = "in-process"
    num_processes: int = Field(1, ge=1)
    args: list[str] = Field(default_factory=list)  # more `accelerate launch` flags, e.g. [--mixed_precision, bf16]


class Arm(StageConfig):
    """One generate + evaluate run of a run file, in <run folder>/<name>/: its student (`base` or a
    trained mode), its strategy, and the `generate` settings that differ from the run's section."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: Literal["base", "baseline", "codeplan"]
    strategy: Strategy
    generate: GenerateSection = Field(default_factory=GenerateSection)  # type: ignore[valid-type]
    # Another arm this one is also compared with in the report, beyond the reference: e.g. plan
    # sampling with the baseline reranked on the same public tests at the same budget.
    control: str | None = None


@dataclass(frozen=True)
class Target:
    """What one generate + evaluate pair runs: the report's label, the student, the strategy, its
    folder, the stage-name suffix, and the generate settings it changes."""

    label: str
    model: str
    strategy: str
    folder: Path
    stage: str
    generate: dict[str, Any]


class RunConfig(StageConfig):
    """One file for the whole pipeline. Stage sections hold that stage's config fields, minus
    those the pipeline fills in (data, inputs, outputs)."""

    name: str
    out: str | None = None  # run folder; default runs/<name>
    seed: int = 0
    data: RunData
    plans: str | None = None  # existing plans.jsonl ("sample" = the bundled plans): no distillation
    distill: DistillSection | None = None  # type: ignore[valid-type]
    student: str
    modes: list[Mode] = Field(default_factory=lambda: ["baseline", "codeplan"])
    train: TrainSection = Field(default_factory=TrainSection)  # type: ignore[valid-type]
    train_launcher: TrainLauncher = Field(default_factory=TrainLauncher)
    strategies: dict[Mode, list[Strategy]] = Field(
        default_factory=lambda: {"baseline": ["direct"], "codeplan": ["plan-sampling"]})
    arms: list[Arm] | None = None  # instead of `strategies`: named runs, each with its own settings
    generate: GenerateSection = Field(default_factory=GenerateSection)  # type: ignore[valid-type]
    # How the trained students generate: hf, vllm, or llamacpp (an export stage writes each student
    # as a GGUF file first); auto = llamacpp where llama-cpp-python is installed, else hf.
    generate_backend: Literal["auto", "hf", "vllm", "llamacpp"] = "hf"
    export_dtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"  # the students' GGUF files (llamacpp)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)  # type: ignore[valid-type]
    print_report: bool = True
    # A markdown file (e.g. the experiment's README) whose lines between '<!-- summary:start -->' and
    # '<!-- summary:end -->' are replaced by the report's Summary table on every run.
    summary_into: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_filled(cls, values: Any) -> Any:
        """A section setting a field the pipeline fills in gets an error saying so (not 'extra input')."""
        if isinstance(values, dict):
            for section, reserved in FILLED.items():
                clash = reserved & set(values.get(section) or {})
                if clash:
                    raise ValueError(f"'{section}.{sorted(clash)[0]}' is set by the pipeline; remove it")
        return values

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        if not self.modes:
            raise ValueError("name at least one training mode (codeplan, baseline)")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("a mode is named twice")
        if self.arms is not None:
            self._check_arms()
        else:
            for mode in self.modes:
                if not self.strategies.get(mode):
                    raise ValueError(f"no generation strategy for mode '{mode}'")
        if any(t.model == "baseline" and t.strategy == "plan-sampling" for t in self.runs()):
            raise ValueError("the baseline is trained on code only and cannot sample plans: use direct")
        if self.generate_backend == "llamacpp" and getattr(self.train, "plan_head", False):
            raise ValueError("a plan-head student is not exported to GGUF yet (its plan_model/ would be left out): "
                             "use generate_backend hf or vllm with train.plan_head")
        if self.plans is None and self.distill is None:
            raise ValueError("give either `plans` (an existing plans.jsonl) or a `distill` section")
        return self

    def _check_arms(self) -> None:
        if "strategies" in self.model_fields_set:
            raise ValueError("give `strategies` or `arms`, not both")
        if not self.arms:
            raise ValueError("`arms` is empty: name at least one")
        names = [arm.name for arm in self.arms]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"arm '{twice[0]}' is named twice")
        for arm in self.arms:
            if arm.name in ("baseline", "codeplan", BASE):
                raise ValueError(f"arm '{arm.name}': that folder holds a student; choose another name")
            if arm.model != BASE and arm.model not in self.modes:
                raise ValueError(f"arm '{arm.name}' uses the {arm.model} student, which `modes` does not train")
            if arm.control is not None and (arm.control not in names or arm.control == arm.name):
                raise ValueError(f"arm '{arm.name}': its control '{arm.control}' must be another arm of this file")

    # ---- where things go ----

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.name

    def plans_path(self) -> Path:
        if self.plans is None:
            return self.run_dir / "plans.jsonl"
        if self.plans == "sample":
            return Path(SAMPLE_PLANS)
        return Path(self.plans)

    def model_dir(self, mode: str) -> Path:
        return self.run_dir / mode / "model"

    def backend(self) -> str:
        """generate_backend with `auto` decided: llamacpp where it is installed."""
        if self.generate_backend != "auto":
            return self.generate_backend
        exportable = not getattr(self.train, "plan_head", False)  # a plan head is not exported to GGUF yet
        return "llamacpp" if exportable and importlib.util.find_spec("llama_cpp") is not None else "hf"

    def gguf_path(self, mode: str) -> Path:
        return self.run_dir / mode / f"model-{self.export_dtype}.gguf"

    def student_spec(self, mode: str) -> str:
        """How generate loads the student of `mode` (a trained mode, or `base`: the student as given)."""
        backend = self.backend()
        if backend == "llamacpp":
            return f"llamacpp:{self.gguf_path(mode)}"
        return ("vllm:" if backend == "vllm" else "") + (self.student if mode == BASE else str(self.model_dir(mode)))

    def export_config(self, mode: str) -> ExportConfig:
        """For `base`, `model` names the student as given; the export stage resolves it to a folder."""
        model = self.student if mode == BASE else str(self.model_dir(mode))
        return ExportConfig(model=model, out=str(self.gguf_path(mode)), dtype=self.export_dtype)

    def samples_path(self, target: Target) -> Path:
        return target.folder / "samples.jsonl"

    def results_path(self, target: Target) -> Path:
        return target.folder / "results.json"

    # ---- the stage configs, built from the sections (validation happens here) ----

    def distill_config(self) -> DistillConfig:
        values = {**_given(self.distill), "data": self.data.train.model_dump(), "out": str(self.plans_path())}
        return validate_config(DistillConfig, _with_seed(DistillConfig, values, self.seed), source=f"{self.name}: distill")

    def train_config(self, mode: str) -> TrainConfig:
        values = {**_given(self.train), "data": self.data.train.model_dump(), "plans": str(self.plans_path()),
                  "student": self.student, "out": str(self.model_dir(mode)), "mode": mode}
        return validate_config(TrainConfig, _with_seed(TrainConfig, values, self.seed), source=f"{self.name}: train")

    def generate_config(self, target: Target) -> GenerateConfig:
        values = {**_given(self.generate), **target.generate, "data": self.data.test.model_dump(),
                  "model": self.student_spec(target.model), "out": str(self.samples_path(target)),
                  "strategy": target.strategy}
        return validate_config(GenerateConfig, _with_seed(GenerateConfig, values, self.seed),
                               source=f"{self.name}: generate ({target.label})")

    def evaluate_config(self, target: Target) -> EvaluateConfig:
        values = {**_given(self.evaluate), "data": self.data.test.model_dump(), "samples": str(self.samples_path(target)),
                  "out": str(self.results_path(target))}
        return validate_config(EvaluateConfig, values, source=f"{self.name}: evaluate")

    def runs(self) -> list[Target]:
        """What to generate and evaluate, in report order: the arms as listed, or each mode's
        strategies (baseline first)."""
        if self.arms is not None:
            return [Target(arm.name, arm.model, arm.strategy, self.run_dir / arm.name, arm.name, _given(arm.generate))
                    for arm in self.arms]
        return [Target(f"{mode}/{strategy}", mode, strategy, self.run_dir / mode / strategy, f"{mode}-{strategy}", {})
                for mode in self.modes for strategy in self.strategies[mode]]

    def controls(self) -> dict[str, str]:
        """Arm name -> the arm it is also compared with in the report."""
        return {arm.name: arm.control for arm in self.arms or [] if arm.control is not None}

    def validate_stages(self) -> list["Stage"]:
        """Build every stage's config now, so a bad setting fails before any work is done."""
        return plan_stages(self)


def _given(section: StageConfig | None) -> dict[str, Any]:
    """The settings a run file gave in a section (defaults stay the stage's own)."""
    return section.model_dump(mode="json", exclude_unset=True) if section is not None else {}


def _with_seed(cls: type[StageConfig], values: dict[str, Any], seed: int) -> dict[str, Any]:
    """The run's seed for stages that take one and were not given their own."""
    if "seed" in cls.model_fields and "seed" not in values:
        values["seed"] = seed
    return values


def load_run_config(path: str | Path) -> RunConfig:
    cfg = validate_config(RunConfig, read_yaml(path), source=str(path))
    return cfg


# ---- stages -------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str  # e.g. "train-codeplan"
    title: str  # what the user sees
    config: Any  # the stage's own pydantic config
    output: Path  # the file or folder the stage writes
    action: Callable[[], Any]
    complete: Callable[[], bool] | None = None  # the stage's own completion check, where it has one

    def settings(self) -> dict[str, Any]:
        """The settings the config file (or the pipeline) gave, without defaults: a new version of
        codeplan adding a field or changing a default does not invalidate finished stages."""
        return self.config.model_dump(mode="json", exclude_unset=True)

    def key(self) -> str:
        payload = json.dumps(self.settings(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def plan_stages(cfg: RunConfig, only: list[str] | None = None) -> list[Stage]:
    """The stages in order; with `only` (run labels: arm names, or mode/strategy), just those runs
    and the stages they need."""
    targets = cfg.runs()
    modes = list(cfg.modes)
    if only is not None:
        labels = [t.label for t in targets]
        unknown = [name for name in only if name not in labels]
        if unknown:
            raise InputError(f"'{cfg.name}' has no run named '{unknown[0]}'; its runs: {', '.join(labels)}", field="arm")
        targets = [t for t in targets if t.label in only]
        modes = [mode for mode in modes if any(t.model == mode for t in targets)]
    stages: list[Stage] = []
    if cfg.plans is None and modes:
        distill_cfg = cfg.distill_config()
        stages.append(Stage("distill", "distill: teacher writes plans", distill_cfg, cfg.plans_path(),
                            lambda: distill(distill_cfg)))
    if cfg.backend() == "llamacpp" and any(t.model == BASE for t in targets):
        # The untrained student is exported the same way as the trained ones, so arms differ by
        # training only, not by quantisation.
        export_cfg = cfg.export_config(BASE)
        stages.append(Stage(f"export-{BASE}", f"export: the untrained student -> GGUF ({cfg.export_dtype})", export_cfg,
                            cfg.gguf_path(BASE), lambda c=export_cfg: _export_base(c),
                            complete=cfg.gguf_path(BASE).is_file))
    for mode in modes:
        train_cfg = cfg.train_config(mode)
        stages.append(Stage(f"train-{mode}", f"train: {mode}", train_cfg, cfg.model_dir(mode),
                            lambda c=train_cfg, m=mode: _train(cfg, c, m),
                            complete=lambda d=cfg.model_dir(mode): is_trained(d)))
        if cfg.backend() == "llamacpp":
            export_cfg = cfg.export_config(mode)
            stages.append(Stage(f"export-{mode}", f"export: {mode} model -> GGUF ({cfg.export_dtype})", export_cfg,
                                cfg.gguf_path(mode), lambda c=export_cfg: export_gguf(c),
                                complete=cfg.gguf_path(mode).is_file))
    for target in targets:  # each run judged as soon as it is generated: its results come early
        gen_cfg, eval_cfg = cfg.generate_config(target), cfg.evaluate_config(target)
        # A stage whose output was deleted after it finished is run again (to redo one arm, delete its folder).
        summary = cfg.samples_path(target).with_suffix(".summary.json")
        stages.append(Stage(f"generate-{target.stage}", f"generate: {_title(target)}", gen_cfg,
                            cfg.samples_path(target), lambda c=gen_cfg: generate(c), complete=summary.is_file))
        stages.append(Stage(f"evaluate-{target.stage}", f"evaluate: {_title(target)}", eval_cfg,
                            cfg.results_path(target), lambda c=eval_cfg: evaluate(c),
                            complete=cfg.results_path(target).is_file))
    return stages


def _title(target: Target) -> str:
    student = "untrained student" if target.model == BASE else f"{target.model} model"
    return f"{student}, {target.strategy}" + ("" if target.label.startswith(f"{target.model}/") else f" ({target.label})")


def _export_base(export_cfg: ExportConfig) -> Any:
    """Export the student as given: a GGUF or hub spec is first resolved to a Hugging Face folder."""
    folder, _ = resolve_model_source(export_cfg.model)
    if not Path(folder).exists():  # a hub id: its files, downloaded (or from the local cache)
        from huggingface_hub import snapshot_download

        folder = snapshot_download(folder)
    return export_gguf(export_cfg.model_copy(update={"model": folder}))


def _train(cfg: RunConfig, train_cfg: Any, mode: str) -> Any:
    if cfg.train_launcher.kind == "in-process":
        # An interrupted training (Ctrl-C, SIGTERM) continues from its checkpoint on the next run.
        return train(train_cfg.model_copy(update={"resume": True}))
    return _launch_accelerate(cfg, train_cfg, mode)


def accelerate_command(cfg: RunConfig, train_cfg: Any, config_file: Path) -> list[str]:
    """`accelerate launch ... codeplan train --config FILE ...` for one mode."""
    script = Path(sys.executable).with_name("codeplan")
    if not script.is_file():
        found = shutil.which("codeplan")
        if not found:
            raise SetupError("the `codeplan` command is not installed (pip install -e .) - accelerate needs it")
        script = Path(found)
    launcher = cfg.train_launcher
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(launcher.num_processes),
            *launcher.args, str(script), "train", "--config", str(config_file), "--data", train_cfg.data.path,
            "--plans", str(train_cfg.plans), "--student", str(train_cfg.student), "--out", str(train_cfg.out),
            "--resume"]  # an interrupted training continues from its checkpoint on the next run


def _launch_accelerate(cfg: RunConfig, train_cfg: Any, mode: str) -> None:
    config_file = cfg.run_dir / mode / "train.yaml"
    train_cfg.to_yaml(config_file)
    command = accelerate_command(cfg, train_cfg, config_file)
    print("$ " + " ".join(command), flush=True)
    status = subprocess.call(command)
    if status != 0:
        raise SetupError(f"accelerate launch exited with status {status} (training of '{mode}')")


# ---- completion markers -------------------------------------------------------------------------


def _marker(cfg: RunConfig, stage: Stage) -> Path:
    return cfg.run_dir / ".stages" / f"{stage.name}.json"


def stage_done(cfg: RunConfig, stage: Stage) -> bool:
    """True when the stage finished before with the same settings; an error when with others."""
    marker = _marker(cfg, stage)
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("key") != stage.key() and not _same_settings(stage.settings(), recorded.get("config") or {}):
            raise InputError(f"stage '{stage.name}' was completed with other settings; delete {stage.output} and "
                             f"{marker} (and the stages after it) or choose another run folder (`out`)",
                             path=str(cfg.run_dir), field=stage.name)
        return stage.complete() if stage.complete else True
    return False


def _same_settings(given: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Every setting given now has the value the finished stage ran with."""
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(recorded.get(key), dict):
            if not _same_settings(value, recorded[key]):
                return False
        elif recorded.get(key) != value:
            return False
    return True


def _mark_done(cfg: RunConfig, stage: Stage, seconds: float, cpu_seconds: float | None = None) -> None:
    write_json(_marker(cfg, stage), {"stage": stage.name, "key": stage.key(), "seconds": round(seconds, 3),
                                     "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 3),
                                     "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "config": stage.config.model_dump(mode="json")})


def _versions() -> dict[str, str]:
    versions = {"codeplan": codeplan.__version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return versions


# ---- the command --------------------------------------------------------------------------------


def run_pipeline(config: str | RunConfig, only: list[str] | None = None) -> dict[str, Any]:
    """Run every stage not yet complete (with `only`: those of the runs named), then write and print
    the report of every run that has results. Returns run.json's content.
    The run folder is locked for the whole run: a second `codeplan run` on it stops at once."""
    cfg = load_run_config(config) if not isinstance(config, RunConfig) else config
    stages = cfg.validate_stages()  # every section is checked, even those of runs not selected
    if only is not None:
        stages = plan_stages(cfg, only)
    with hold_output(cfg.run_dir):
        return _run_stages(cfg, stages)


def _run_stages(cfg: RunConfig, stages: list[Stage]) -> dict[str, Any]:
    console = Console(stderr=False)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, dict[str, Any]] = {}
    for number, stage in enumerate(stages, start=1):
        header = f"[{number}/{len(stages)}] {stage.title}"
        if stage_done(cfg, stage):
            recorded = json.loads(_marker(cfg, stage).read_text(encoding="utf-8"))
            console.print(f"[dim]{header}: done before ({recorded.get('seconds', 0):.0f} s), skipped[/dim]")
            timings[stage.name] = {"seconds": recorded.get("seconds"), "cpu_seconds": recorded.get("cpu_seconds"),
                                   "skipped": True}
            continue
        console.print(f"[bold]{header}[/bold] -> {stage.output}", soft_wrap=True)
        t0, cpu0 = time.perf_counter(), time.process_time()
        stage.action()
        seconds = time.perf_counter() - t0
        # CPU seconds of this process (all its threads): comparable across machines with other
        # load, where wall time is not; programs run by the judge are not included.
        cpu = time.process_time() - cpu0
        _mark_done(cfg, stage, seconds, cpu)
        timings[stage.name] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "skipped": False}
        console.print(f"    finished in {seconds:.1f} s ({cpu:.1f} CPU s)")
    record = {"name": cfg.name, "run_dir": str(cfg.run_dir), "student": cfg.student,
              "teacher": (cfg.distill.teacher or cfg.distill.teacher_model) if cfg.distill is not None and cfg.plans is None else None,
              "plans": str(cfg.plans_path()), "train_data": cfg.data.train.model_dump(mode="json"),
              "test_data": cfg.data.test.model_dump(mode="json"), "seed": cfg.seed, "versions": _versions(),
              "stages": timings, "wall_seconds_this_run": round(time.perf_counter() - started, 3),
              "config": cfg.model_dump(mode="json")}
    report = _report(cfg, record)
    write_json(cfg.run_dir / "run.json", record)
    total = time.perf_counter() - started
    console.print(f"[bold green]run '{cfg.name}' complete[/bold green] in {total:.1f} s: {cfg.run_dir / 'report.md'}")
    if cfg.print_report and report is not None:
        console.print(Markdown(report["markdown"]))
    return record


def _report(cfg: RunConfig, record: dict[str, Any]) -> dict[str, Any] | None:
    done = [target for target in cfg.runs() if cfg.results_path(target).is_file()]  # runs not selected yet are left out
    if not done:
        return None
    paths = [str(cfg.results_path(target)) for target in done]
    labels = [target.label for target in done]
    # Every stage finished in this folder (its marker), not only those this run (or its --arm) touched.
    stage_seconds = {}
    for stage in plan_stages(cfg):
        marker = _marker(cfg, stage)
        if marker.is_file():
            stage_seconds[stage.name] = json.loads(marker.read_text(encoding="utf-8")).get("seconds")
    meta = {"run": cfg.name, "student": cfg.student, "teacher": record["teacher"] or f"plans from {record['plans']}",
            "train data": _describe(cfg.data.train), "test data": _describe(cfg.data.test), "seed": cfg.seed,
            "versions": record["versions"], "stage seconds": stage_seconds, "trained on": _trained_on(cfg)}
    return write_report(paths, cfg.run_dir / "report.md", labels=labels, meta=meta, html=cfg.run_dir / "report.html",
                        data=cfg.data.test, summary_into=cfg.summary_into, controls=cfg.controls())


def _trained_on(cfg: RunConfig) -> dict[str, str]:
    """Per mode: optimizer steps and, per task, examples and tokens (from train_summary.json)."""
    seen = {}
    for mode in cfg.modes:
        path = cfg.model_dir(mode) / "train_summary.json"
        if path.is_file():
            summary = json.loads(path.read_text(encoding="utf-8"))
            tasks = ", ".join(f"{task} {v['examples']} examples / {v['tokens']} tokens"
                              for task, v in (summary.get("trained_on") or {}).items())
            seen[mode] = f"{summary.get('steps')} steps; {tasks}"
    return seen


def _describe(data: DataConfig) -> str:
    parts = [data.path] + [f"{k}={v}" for k, v in data.model_dump().items() if k != "path" and v not in (None, False)]
    return ", ".join(parts)
