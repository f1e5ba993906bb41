"""Stage 3, `codeplan generate`: sample programs for every problem and write samples.jsonl.

The strategies (direct, plan sampling) live in codeplan.strategies; this stage loads the student,
walks the problems in chunks, and writes each finished problem's lines together (codeplan.samples
has the file format and its sidecars). A re-run skips finished problems and drops the lines of a
problem a killed run left unfinished, so no sample is ever duplicated.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from tqdm import tqdm

from codeplan.config import BackendConfig, DataConfig
from codeplan.data import load_problems
from codeplan.errors import InputError
from codeplan.jsonl import JsonlAppender, write_json
from codeplan.judge import Judge, JudgeConfig
from codeplan.llm import TextGenerator, is_server_spec, load_generator
from codeplan.modeling import recorded_prompt_format
from codeplan.output_lock import locks_output
from codeplan.problems import Problem
from codeplan.samples import finished_problems, sidecar_paths, summarize_samples
from codeplan.strategies import ChatPrompts, ProblemWork, SamplingConfig, plans_record, run_chunk, sample_records


class GenerateConfig(SamplingConfig):
    """Settings of `codeplan generate`: the sampling settings plus what to load, where to write,
    and how the programs judged on example tests are run."""

    renamed = {**SamplingConfig.renamed, "judge_workers": "judge.workers", "judge_timeout": "judge.timeout",
               "unsafe_no_sandbox": "judge.sandbox (false)", "batch_size": "backend.batch_size",
               "dtype": "backend.dtype"}

    data: DataConfig
    model: str = Field(description="Trained student: folder, hub id, .gguf, hf:..., vllm:..., or openai:BASE_URL.")
    model_name: str | None = Field(None, description="Model name on an openai:URL server.")
    plan_model: str | None = Field(None, description=(
        "Model that writes the plans (default: MODEL/plan_model when training exported a plan head, else MODEL)."))
    out: str = Field(description="samples.jsonl to write (re-runs resume).")
    batch_problems: int = Field(1, ge=1, description="Problems whose prompts go to the backend together.")
    chat_template: bool | None = Field(None, description=(
        "Wrap prompts in the model's chat template (default: what training recorded, in train_summary.json or an exported GGUF)."))
    progress: bool = Field(True, description="Show the progress bar.")
    backend: BackendConfig = Field(default_factory=BackendConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig, json_schema_extra={"flag_prefix": "judge-"})

    @model_validator(mode="after")
    def _openai_needs_name(self) -> "GenerateConfig":
        if is_server_spec(self.model) and not self.model_name:
            raise ValueError("an openai:URL model needs model_name (--model-name)")
        return self


def load_student(cfg: GenerateConfig, spec: str | None = None, engines: int = 1) -> TextGenerator:
    """The generation backend for cfg.model (or `spec`): local, vLLM, or an OpenAI-compatible server.
    `engines`: models this process loads (a separate plan model makes two: vLLM splits the GPU)."""
    spec = spec or cfg.model
    if is_server_spec(spec):
        # Plan likelihood breaks ties (and is the fallback rule): ask the server for log-probabilities.
        return load_generator(spec, model=cfg.model_name, logprobs=cfg.strategy == "plan-sampling")
    return load_generator(spec, cfg.backend, engines=engines)


def _model_folder(model: str) -> tuple[str, Path]:
    scheme, _, rest = model.partition(":")
    return (scheme, Path(rest)) if scheme in ("hf", "vllm") and rest else ("", Path(model))


def uses_chat_template(cfg: GenerateConfig) -> bool:
    """cfg.chat_template, else what `codeplan train` recorded for the model (its folder's
    train_summary.json, or the GGUF `codeplan export` made of it)."""
    if cfg.chat_template is not None:
        return cfg.chat_template
    recorded = recorded_prompt_format(cfg.model) or {}
    return bool(recorded.get("chat_template", False))


def plan_model_spec(cfg: GenerateConfig) -> str | None:
    """The separate plan model to use, if any (see GenerateConfig.plan_model)."""
    if cfg.plan_model:
        return cfg.plan_model
    scheme, folder = _model_folder(cfg.model)
    if (folder / "plan_model" / "config.json").is_file():
        return f"{scheme}:{folder / 'plan_model'}" if scheme else str(folder / "plan_model")
    return None


def _chunks(problems: list[Problem], size: int, done: set[str]) -> Iterator[list[Problem]]:
    """Fixed chunks over the whole problem list, minus finished ones."""
    for start in range(0, len(problems), size):
        todo = [p for p in problems[start:start + size] if p.id not in done]
        if todo:
            yield todo


@locks_output(lambda cfg: cfg.out)
def generate(cfg: GenerateConfig) -> dict[str, Any]:
    """Write cfg.out (resuming) and return the run's summary (also written to *.summary.json)."""
    problems = load_problems(cfg.data)
    ids = [p.id for p in problems]
    duplicates = [pid for pid, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise InputError(f"problem id '{duplicates[0]}' occurs {Counter(ids)[duplicates[0]]} times", path=cfg.data.path)
    out = Path(cfg.out)
    done = finished_problems(out, cfg.strategy, cfg.num_samples) & set(ids)
    started = time.perf_counter()
    todo = [p for p in problems if p.id not in done]
    if todo:
        planner_spec = plan_model_spec(cfg) if cfg.strategy == "plan-sampling" else None
        engines = 2 if planner_spec else 1
        generator = load_student(cfg, engines=engines)
        planner = load_student(cfg, planner_spec, engines=engines) if planner_spec else None
        if uses_chat_template(cfg):
            generator = ChatPrompts(generator)
            planner = ChatPrompts(planner) if planner is not None else None
        plans_path, _ = sidecar_paths(out)
        needs_judge = cfg.strategy in ("plan-sampling", "direct-rerank") and any(p.public_tests for p in todo)
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), unit="problem", desc=f"generate ({cfg.strategy})",
                   disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
        with (Judge(cfg.judge) if needs_judge else nullcontext(None)) as judge, JsonlAppender(out) as samples_out, \
                (JsonlAppender(plans_path) if cfg.strategy == "plan-sampling" else nullcontext()) as plans_out:
            for chunk in _chunks(problems, cfg.batch_problems, done):
                works = [ProblemWork(problem) for problem in chunk]
                run_chunk(works, cfg, generator, judge, planner, phase=lambda text: bar.set_postfix_str(text, refresh=True))
                for work in works:
                    if plans_out is not None:
                        plans_out.write(plans_record(work))
                    for row in sample_records(work, cfg):
                        samples_out.write(row)
                bar.update(len(works))
        bar.close()
    # CPU cost is in each problem's budget (summed by summarize_samples), so it survives resumes.
    summary = summarize_samples(out, strategy=cfg.strategy, config=cfg.model_dump(mode="json"),
                                seconds=time.perf_counter() - started, ids=ids)
    summary_path = sidecar_paths(out)[1]
    if todo or not _same_but_wall_time(summary_path, summary):  # a re-run with nothing to do leaves the file alone
        write_json(summary_path, summary)
    return summary


def _same_but_wall_time(path: Path, summary: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    on_file = json.loads(path.read_text(encoding="utf-8"))
    return {**on_file, "wall_seconds_this_run": None} == {**summary, "wall_seconds_this_run": None}
