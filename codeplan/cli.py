"""The `codeplan` command: one thin Typer app. Each sub-command parses its flags into the stage's
config and calls that stage's one function; all the work lives in the modules it imports."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from codeplan.errors import InputError, SetupError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil an LLM's planning skill into a small code model (CodePLAN).")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and convert benchmark data.")
app.add_typer(data_app, name="data")

# Flags shared by every command that reads problems.
DataPath = Annotated[str, typer.Option("--data", help="File, folder, 'humaneval', or hub:DATASET_ID.")]
Format = Annotated[Optional[str], typer.Option(help="Force the data format instead of detecting it.")]
Split = Annotated[Optional[str], typer.Option(help="Split to select (e.g. train, test).")]
Difficulty = Annotated[Optional[str], typer.Option(help="Comma-separated difficulties to keep.")]
Limit = Annotated[Optional[int], typer.Option(help="Keep at most this many problems.")]
SkipInvalid = Annotated[bool, typer.Option("--skip-invalid", help="Skip bad records with a counted warning.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML file of settings; flags override it.")]


def _data(path: str, format: str | None, split: str | None, difficulty: str | None, limit: int | None,
          skip_invalid: bool) -> dict[str, Any]:
    return {"path": path, "format": format, "split": split, "limit": limit, "skip_invalid": skip_invalid or None,
            "difficulty": [d.strip() for d in difficulty.split(",") if d.strip()] if difficulty else None}


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input and missing setup end in one clear line and exit status 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InputError, SetupError) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: finished work is saved; run the same command again to resume.",
                        fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


# ---- data ---------------------------------------------------------------------------------------

@data_app.command("inspect")
@user_errors
def data_inspect(
    path: Annotated[str, typer.Argument(help="File, folder, 'humaneval', or hub:DATASET_ID.")],
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Counts by split, difficulty and kind; tests per problem; share with public tests."""
    # DataConfig.load(None, path=...) would clash with load's own `path` argument: validate directly.
    from codeplan.config import DataConfig, merge_settings, validate_config
    from codeplan.data import inspect_problems

    settings = merge_settings({}, _data(path, format, split, difficulty, limit, skip_invalid))
    inspect_problems(validate_config(DataConfig, settings, source="command line"), as_json=as_json)


@data_app.command("convert")
@user_errors
def data_convert(
    path: Annotated[str, typer.Argument(help="File, folder, 'humaneval', or hub:DATASET_ID.")],
    out: Annotated[Path, typer.Option(help="Canonical problems JSONL to write.")],
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Write problems in the canonical JSONL format."""
    from codeplan.config import DataConfig, merge_settings, validate_config
    from codeplan.data import convert_problems

    settings = merge_settings({}, _data(path, format, split, difficulty, limit, skip_invalid))
    convert_problems(validate_config(DataConfig, settings, source="command line"), out)


# ---- stages -------------------------------------------------------------------------------------

@app.command()
@user_errors
def distill(
    data: DataPath,
    out: Annotated[Path, typer.Option(help="plans.jsonl to write (appended to; re-runs resume).")],
    teacher_url: Annotated[Optional[str], typer.Option(help="Base URL of an OpenAI-compatible server.")] = None,
    teacher_model: Annotated[Optional[str], typer.Option(help="Model name on that server.")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Local teacher: hf:MODEL (hub id, folder or .gguf).")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight at once.")] = None,
    forward: Annotated[bool, typer.Option("--forward", help="Plan from the statement alone (ablation).")] = False,
    include_statement: Annotated[bool, typer.Option("--include-statement", help="Show the teacher the problem statement too.")] = False,
    max_solutions: Annotated[Optional[int], typer.Option(help="Reference solutions per problem that get plans.")] = None,
    solution_choice: Annotated[Optional[str], typer.Option(help="first | shortest | all: which solutions get plans.")] = None,
    plans_per_solution: Annotated[Optional[int], typer.Option(help="Plans asked for per chosen solution.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Teacher temperature (default 0.2).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Longest plan, in tokens.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Base seed (each unit gets its own from it).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds per request.")] = None,
    max_retries: Annotated[Optional[int], typer.Option(help="Retries per request on 429/5xx/timeouts/bad bodies.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sequences decoded together (local teacher).")] = None,
    price_in: Annotated[Optional[float], typer.Option(help="Price per 1M prompt tokens (for the cost line).")] = None,
    price_out: Annotated[Optional[float], typer.Option(help="Price per 1M completion tokens.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Keep a plan only if code written from it passes the tests.")] = False,
    verify_model: Annotated[Optional[str], typer.Option(help="Code writer for --verify (default: the teacher).")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    config: ConfigFile = None,
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Stage 1: a teacher writes the plan behind each reference solution (backward reasoning)."""
    from codeplan.distill import DistillConfig, distill as run_distill

    # Unset data flags stay unset (DataConfig's defaults apply), rather than reaching it as None.
    data_flags = {k: v for k, v in _data(data, format, split, difficulty, limit, skip_invalid).items() if v is not None}
    cfg = DistillConfig.load(
        config, data=data_flags,
        out=str(out), teacher_url=teacher_url, teacher_model=teacher_model, teacher=teacher,
        concurrency=concurrency, forward=forward or None, include_statement=include_statement or None,
        max_solutions=max_solutions, solution_choice=solution_choice, plans_per_solution=plans_per_solution,
        temperature=temperature, max_tokens=max_tokens, seed=seed, timeout=timeout, max_retries=max_retries,
        batch_size=batch_size, price_in=price_in, price_out=price_out, verify=verify or None,
        verify_model=verify_model, progress=False if no_progress else None)
    run_distill(cfg)


@app.command()
@user_errors
def train(
    data: DataPath,
    plans: Annotated[Path, typer.Option(help="plans.jsonl from `codeplan distill`.")],
    student: Annotated[str, typer.Option(help="Hub id, local folder or .gguf file.")],
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and the final model.")],
    mode: Annotated[Optional[str], typer.Option(help="codeplan (code + plan tasks) or baseline (code only).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")] = False,
    config: ConfigFile = None,
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the training examples.")] = None,
    micro_batch_size: Annotated[Optional[int], typer.Option(help="Examples per micro-batch (per device).")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Micro-batches per optimizer step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default 2e-5).")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto, float32, bfloat16 or float16 (mixed precision).")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="alternate (per micro-batch) or proportional.")] = None,
    plan_head: Annotated[Optional[bool], typer.Option("--plan-head/--shared-head", help="Separate plan output head.")] = None,
    plan_code: Annotated[Optional[bool], typer.Option("--plan-code/--no-plan-code", help="Third task: problem + plan -> code.")] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--full", help="LoRA adapters instead of full fine-tuning.")] = None,
    packing: Annotated[Optional[bool], typer.Option("--packing/--no-packing", help="Pack examples (causal students).")] = None,
    chat_template: Annotated[Optional[bool], typer.Option("--chat-template/--no-chat-template", help="Wrap prompts in the model's chat template.")] = None,
    gradient_checkpointing: Annotated[Optional[bool], typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")] = None,
    max_source_tokens: Annotated[Optional[int], typer.Option(help="Prompt token limit.")] = None,
    max_target_tokens: Annotated[Optional[int], typer.Option(help="Target token limit.")] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N optimizer steps.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    strict: Annotated[Optional[bool], typer.Option("--strict/--lenient", help="Stop at the first bad input instead of counting it.")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show the progress bar.")] = None,
) -> None:
    """Stage 2: fine-tune the student on problem->plan and problem->code (or code only)."""
    from codeplan.train import TrainConfig, train as run_train

    # Unset data flags are dropped here: merge_settings keeps None values of a nested mapping
    # that the YAML file does not have, and DataConfig rejects skip_invalid=None.
    data_flags = {k: v for k, v in _data(data, format, split, difficulty, limit, skip_invalid).items() if v is not None}
    cfg = TrainConfig.load(
        config, data=data_flags,
        plans=str(plans), student=student, out=str(out), mode=mode, resume=resume or None,
        max_steps=max_steps, epochs=epochs, micro_batch_size=micro_batch_size, grad_accum=grad_accum, lr=lr,
        dtype=dtype, schedule=schedule, plan_head=plan_head, plan_conditioned_code=plan_code, lora=lora,
        packing=packing, chat_template=chat_template, gradient_checkpointing=gradient_checkpointing,
        max_source_tokens=max_source_tokens, max_target_tokens=max_target_tokens, save_every=save_every,
        seed=seed, strict=strict, progress=progress)
    run_train(cfg)


@app.command()
@user_errors
def generate(
    model: Annotated[str, typer.Option(help="Trained student: folder, hub id, .gguf, or openai:URL.")],
    data: DataPath,
    out: Annotated[Path, typer.Option(help="samples.jsonl to write (re-runs resume).")],
    strategy: Annotated[Optional[str], typer.Option(help="plan-sampling or direct.")] = None,
    num_plans: Annotated[Optional[int], typer.Option(help="K: plans sampled per problem.")] = None,
    codes_per_plan: Annotated[Optional[int], typer.Option(help="M: programs per plan, judged on example tests.")] = None,
    num_samples: Annotated[Optional[int], typer.Option(help="N: final programs per problem.")] = None,
    model_name: Annotated[Optional[str], typer.Option(help="Model name on an openai:URL server.")] = None,
    selection: Annotated[Optional[str], typer.Option(help="Plan selection rule: pass-share, test-rate, likelihood, first.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,
    config: ConfigFile = None,
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Stage 3: sample programs, directly or through plan sampling and selection."""
    from codeplan.sampling import GenerateConfig, generate as run_generate

    # Unset data flags are dropped so a --config file's data settings stay (and None never validates as a bool).
    data_flags = {key: value for key, value in _data(data, format, split, difficulty, limit, skip_invalid).items()
                  if value is not None}
    cfg = GenerateConfig.load(
        config, data=data_flags, model=model, model_name=model_name, out=str(out), strategy=strategy,
        num_plans=num_plans, codes_per_plan=codes_per_plan, num_samples=num_samples, selection=selection, seed=seed)
    summary = run_generate(cfg)
    budget = summary.get("budget_per_problem", {})
    typer.echo(f"wrote {summary['programs']} programs for {summary['problems']} problems to {out} "
               f"(per problem: {budget.get('model_calls', 0):g} model calls, {budget.get('completion_tokens', 0):g} tokens, "
               f"{budget.get('programs_judged', 0):g} programs judged)")


@app.command()
@user_errors
def evaluate(
    data: DataPath,
    samples: Annotated[Path, typer.Option(help="samples.jsonl to judge.")],
    out: Annotated[Path, typer.Option(help="results.json to write.")],
    k: Annotated[Optional[str], typer.Option(help="Comma-separated k for pass@k.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Programs judged at once (default: all cores).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="CPU seconds per test.")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help=(
        "CPU limit per problem from its reference solution's own times: max(1 s, 4 x its slowest test)."))] = False,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help="Run programs without isolation.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exact output comparison instead of the APPS harness's leniency.")] = False,
    cache: Annotated[Optional[Path], typer.Option(help="Verdict cache (JSONL; default: OUT.cache.jsonl).")] = None,
    memory_mb: Annotated[Optional[int], typer.Option(help="Memory limit per program process, MB.")] = None,
    tests: Annotated[Optional[str], typer.Option(help="hidden (default) or public tests.")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show the progress bar.")] = None,
    config: ConfigFile = None,
    format: Format = None, split: Split = None, difficulty: Difficulty = None, limit: Limit = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Stage 4: judge samples on hidden tests in the sandbox; pass@k, strict accuracy, test-case average."""
    from codeplan.judge.evaluate import EvaluateConfig, evaluate as run_evaluate, parse_k

    data_flags = {k: v for k, v in _data(data, format, split, difficulty, limit, skip_invalid).items() if v is not None}
    cfg = EvaluateConfig.load(
        config, data=data_flags,
        samples=str(samples), out=str(out), workers=workers, timeout=timeout, calibrate=calibrate or None,
        k=parse_k(k) if k else None, unsafe_no_sandbox=unsafe_no_sandbox or None, strict=strict or None,
        cache=str(cache) if cache else None, memory_mb=memory_mb, tests=tests, progress=progress)
    run_evaluate(cfg)


@app.command()
@user_errors
def report(
    results: Annotated[list[Path], typer.Argument(help="One or more results.json files.")],
    out: Annotated[Path, typer.Option(help="report.md to write (plots and report.json beside it).")],
) -> None:
    """Tables and plots from results.json files (baseline against CodePLAN when both are given)."""
    from codeplan.report import write_report

    write_report([str(path) for path in results], str(out))
    typer.echo(f"wrote {out} (report.json and plots beside it)")


@app.command()
@user_errors
def run(config: Annotated[Path, typer.Argument(help="Pipeline YAML (see configs/).")]) -> None:
    """The whole pipeline from one config; stages whose outputs are complete are skipped."""
    from codeplan.pipeline import run_pipeline

    run_pipeline(str(config))


@app.command()
@user_errors
def serve(
    model: Annotated[str, typer.Option(help="Model to serve: folder, hub id or .gguf file.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    served_name: Annotated[Optional[str], typer.Option(help="Model id clients send (default: --model).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sequences decoded together.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (1 is fastest on a busy CPU).")] = None,
    config: ConfigFile = None,
) -> None:
    """An OpenAI-compatible HTTP server for a local model (a trained student)."""
    from codeplan.serve import ServeConfig, serve as run_serve

    run_serve(ServeConfig.load(config, model=model, host=host, port=port, served_name=served_name,
                               batch_size=batch_size, threads=threads))


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Option(help="Trained student folder (codeplan train's OUT).")],
    out: Annotated[Path, typer.Option(help="GGUF file to write.")],
    dtype: Annotated[Optional[str], typer.Option(help="Weight type: f16 (default), bf16, f32 or q8_0.")] = None,
    tokenizer_gguf: Annotated[Optional[str], typer.Option(
        help="GGUF whose tokenizer to copy (default: the student's base model when it was a GGUF).")] = None,
    config: ConfigFile = None,
) -> None:
    """Convert a trained student to GGUF, for the llamacpp backend (llamacpp:FILE.gguf) and llama.cpp."""
    from codeplan.export import ExportConfig, export_gguf

    summary = export_gguf(ExportConfig.load(config, model=str(model), out=str(out), dtype=dtype,
                                            tokenizer_gguf=tokenizer_gguf))
    typer.echo(f"wrote {summary['out']} ({summary['architecture']}, {summary['tensors']} tensors "
               f"{summary['tensor_types']}, {summary['bytes'] / 1e6:.1f} MB; tokenizer from {summary['tokenizer']})")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
