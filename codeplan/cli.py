"""The `codeplan` command line, derived from the stage configs.

Every stage command is built from its pydantic config: each field is one flag (`--num-plans`), its
description is the flag's help, and nested groups are flattened (`data` -> `--data`, `--split`, ...;
`backend` -> `--batch-size`, ...; `judge` -> `--workers` in evaluate, `--judge-workers` elsewhere).
So an option is declared once, in its config, and `--config FILE.yaml` takes the same fields, with
flags overriding the file. A flag of an earlier version fails with its new spelling.

Stage commands, `report` and `run` are imported when they run (click's lazy group and imports
inside those commands, on purpose): `codeplan evaluate` should not pay for importing torch, which
the train stage needs. Configs and data loading are light and imported at the top.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import click
from pydantic import BaseModel

from codeplan.config import DataConfig, merge_settings, read_yaml, validate_config
from codeplan.data import convert_problems, inspect_problems
from codeplan.errors import InputError, SetupError
from codeplan.interrupts import exit_status, stop_on_signals

# command -> (module, config class, function, one-line help). The config's fields are the flags.
STAGES: dict[str, tuple[str, str, str, str]] = {
    "distill": ("codeplan.distill", "DistillConfig", "distill",
                "Stage 1: a teacher writes the plan behind each reference solution (backward reasoning)."),
    "train": ("codeplan.train", "TrainConfig", "train",
              "Stage 2: fine-tune the student on problem->plan and problem->code (or code only)."),
    "generate": ("codeplan.generate", "GenerateConfig", "generate",
                 "Stage 3: sample programs, directly or through plan sampling and selection."),
    "evaluate": ("codeplan.evaluate", "EvaluateConfig", "evaluate",
                 "Stage 4: judge samples on hidden tests in the sandbox; pass@k, strict accuracy, test-case average."),
    "serve": ("codeplan.serve", "ServeConfig", "serve",
              "An OpenAI-compatible HTTP server for a local model (a trained student)."),
    "export": ("codeplan.export", "ExportConfig", "export_gguf",
               "Convert a trained student to GGUF, for the llamacpp backend (llamacpp:FILE.gguf) and llama.cpp."),
}

# Flags of earlier versions that are not config keys, with their new spelling.
RENAMED_FLAGS = {"--plan-code": "--plan-conditioned-code", "--no-plan-code": "--no-plan-conditioned-code",
                 "--lenient": "--no-stop-on-bad-input", "--no-progress-bar": "--no-progress"}


# ---- from config fields to flags ------------------------------------------------------------------


class Flag:
    """One command-line option and the config field it sets (`path`: field names from the top)."""

    def __init__(self, path: tuple[str, ...], option: click.Option) -> None:
        self.path, self.option = path, option


class CommaList(click.ParamType):
    """`1,5,10` -> [1, 5, 10]; with `or_single`, a value without commas stays a plain string."""

    def __init__(self, item: type, or_single: bool = False) -> None:
        self.item, self.or_single = item, or_single
        self.name = f"{item.__name__}[,{item.__name__}...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if self.or_single and "," not in value:
            return value
        try:
            return [self.item(part.strip()) for part in value.split(",") if part.strip()]
        except ValueError:
            self.fail(f"expected comma-separated {self.item.__name__} values, got {value!r}", param, ctx)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None was allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return annotation, False


def _is_group(annotation: Any) -> bool:
    inner, _ = _unwrap(annotation)
    return isinstance(inner, type) and issubclass(inner, BaseModel)


def _click_type(annotation: Any) -> click.ParamType | None:
    """The click type of a field's type; None for types that flags cannot set (config files only)."""
    inner, _ = _unwrap(annotation)
    origin = typing.get_origin(inner)
    if inner in (int, float, str):
        return {int: click.INT, float: click.FLOAT, str: click.STRING}[inner]
    if origin is Literal:
        return click.Choice([str(v) for v in typing.get_args(inner)])
    if origin is list and typing.get_args(inner) and typing.get_args(inner)[0] in (int, str):
        return CommaList(typing.get_args(inner)[0])
    if origin in (typing.Union, types.UnionType):  # e.g. list[str] | str: a list when commas are given
        return CommaList(str, or_single=True)
    return None


def config_flags(model: type[BaseModel], prefix: str = "", path: tuple[str, ...] = ()) -> list[Flag]:
    """Every settable field of `model` (and of its nested groups) as a flag."""
    flags: list[Flag] = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if _is_group(info.annotation):
            group = _unwrap(info.annotation)[0]
            flags += config_flags(group, prefix + str(extra.get("flag_prefix", "")), path + (name,))
            continue
        # A flag named in the field's metadata is used as it is (no group prefix): one spelling everywhere.
        declared = str(extra["flag"]) if "flag" in extra else None
        flag = declared or "--" + prefix + name.replace("_", "-")
        help_text = info.description or ""
        if not info.is_required() and info.default not in (None, False, "", []) and info.default_factory is None:
            help_text += f" [default: {info.default}]"
        if _unwrap(info.annotation)[0] is bool:
            decls = flag if "/" in flag else f"{flag}/--{'no-' + flag[2:]}"
            option = click.Option([decls], default=None, help=help_text)
            flags.append(Flag(path + (name,), option))
            continue
        kind = _click_type(info.annotation)
        if kind is None:
            continue  # mappings and the like: config files only
        metavar = None if isinstance(kind, (click.Choice, CommaList)) else name.upper().split("_")[-1]
        flags.append(Flag(path + (name,), click.Option([flag], type=kind, default=None, help=help_text, metavar=metavar)))
    return flags


def _settings(flags: list[Flag], values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user gave, as a nested mapping of config fields."""
    settings: dict[str, Any] = {}
    for flag in flags:
        value = values.get(flag.option.name)
        if value is None:
            continue
        node = settings
        for part in flag.path[:-1]:
            node = node.setdefault(part, {})
        node[flag.path[-1]] = value
    return settings


def _renamed_flags(model: type[BaseModel], flags: list[Flag]) -> dict[str, str]:
    """Old flag -> new flag, from the config's record of renamed keys (and the CLI-only table)."""
    by_path = {".".join(f.path): f.option.opts[0] for f in flags}
    table = dict(RENAMED_FLAGS)
    for old, new in getattr(model, "renamed", {}).items():
        old_flag = "--" + old.replace("_", "-")
        if new.startswith(":"):  # removed, with the reason
            table[old_flag] = f"gone{new}"
            continue
        target = by_path.get(new.split(" ")[0])
        table[old_flag] = (target + new[len(new.split(" ")[0]):]) if target else f"(config key '{new}')"
    return table


class StageCommand(click.Command):
    """A command whose unknown flags are checked against the renamed ones before click's error."""

    renamed: dict[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as err:
            new = self.renamed.get(err.option_name)
            if new:
                said = new.removeprefix("gone") if new.startswith("gone:") else f" is now {new}"
                raise click.UsageError(f"{err.option_name}{' was removed' + said if new.startswith('gone:') else said}",
                                       ctx=ctx) from None
            raise


def config_command(name: str, model: type[BaseModel], run: Callable[[Any], Any], *, help_text: str,
                   positional: str | None = None, extra: list[click.Parameter] | None = None,
                   after: Callable[[Any, Any, dict[str, Any]], None] | None = None) -> click.Command:
    """A click command whose flags are `model`'s fields; it validates them into the config and calls
    `run(config)`. `positional` names a top-level field taken as an argument instead of a flag;
    `extra` are parameters that are not config fields, handed to `after(config, result, values)`."""
    flags = [f for f in config_flags(model) if ".".join(f.path) != positional]
    seen: dict[str, str] = {}
    for flag in flags:
        for opt in flag.option.opts + flag.option.secondary_opts:
            if opt in seen:
                raise RuntimeError(f"{name}: flag {opt} is declared by both {seen[opt]} and {'.'.join(flag.path)}")
            seen[opt] = ".".join(flag.path)
    params: list[click.Parameter] = []
    if positional:
        params.append(click.Argument([positional]))
    params += [flag.option for flag in flags]
    params.append(click.Option(["--config"], type=click.Path(dir_okay=False), default=None,
                               help="YAML file of these settings; flags override it."))
    params += extra or []

    def callback(**values: Any) -> None:
        given = _settings(flags, values)
        if positional:
            given[positional] = values[positional]
        path = values.get("config")
        merged = merge_settings(read_yaml(path) if path else {}, given)
        config = validate_config(model, merged, source=path or "command line")
        result = run(config)
        if after is not None:
            after(config, result, values)

    command = StageCommand(name, params=params, callback=_user_errors(callback), help=help_text,
                           short_help=help_text.split(". ")[0])
    command.renamed = _renamed_flags(model, flags)
    return command


def _user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input, missing setup and an output in use by another run end in one clear line and exit
    status 2, never a traceback. Ctrl-C and SIGTERM (a scheduler's stop) end the run through the
    stages' interrupt path with status 130 or 143 (codeplan.interrupts)."""

    def wrapper(**kwargs: Any) -> Any:
        try:
            with stop_on_signals():
                return func(**kwargs)
        except (InputError, SetupError) as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt as err:
            click.secho("interrupted: finished work is saved; run the same command again to resume.",
                        fg="yellow", err=True)
            sys.exit(exit_status(err))

    return wrapper


# ---- what each command prints when it is done -----------------------------------------------------


def _after_generate(cfg: Any, summary: Any, values: dict[str, Any]) -> None:
    budget = summary.get("budget_per_problem", {})

    def per_problem(key: str) -> str:  # None: a field the file's older problems did not record
        value = budget.get(key)
        return "unknown" if value is None else f"{value:g}"

    click.echo(f"wrote {summary['programs']} programs for {summary['problems']} problems to {cfg.out} "
               f"(per problem: {per_problem('model_calls')} model calls, {per_problem('completion_tokens')} tokens, "
               f"{per_problem('programs_judged')} programs judged, {per_problem('cpu_seconds')} CPU seconds)")


def _after_export(cfg: Any, summary: Any, values: dict[str, Any]) -> None:
    click.echo(f"wrote {summary['out']} ({summary['architecture']}, {summary['tensors']} tensors "
               f"{summary['tensor_types']}, {summary['bytes'] / 1e6:.1f} MB; tokenizer from {summary['tokenizer']})")


AFTER = {"generate": _after_generate, "export": _after_export}


# ---- the command group ------------------------------------------------------------------------------


class Codeplan(click.Group):
    """The stage commands load on first use; `data`, `report` and `run` are plain commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*STAGES, *self.commands])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from STAGES' one-line help, so `codeplan --help` imports no stage."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = [(name, STAGES[name][3] if name in STAGES else self.commands[name].get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in STAGES:
            return self.commands.get(name)
        module_name, config_name, function_name, help_text = STAGES[name]
        module = importlib.import_module(module_name)
        return config_command(name, getattr(module, config_name), getattr(module, function_name),
                              help_text=help_text, after=AFTER.get(name))


app = Codeplan(help="Distil an LLM's planning skill into a small code model (CodePLAN).", no_args_is_help=True)


@app.group(no_args_is_help=True)
def data() -> None:
    """Inspect and convert benchmark data."""


def _data_command(name: str, run: Callable[..., Any], help_text: str, extra: list[click.Parameter]) -> None:
    def after(cfg: Any, result: Any, values: dict[str, Any]) -> None:
        run(cfg, values)

    data.add_command(config_command(name, DataConfig, lambda cfg: None, help_text=help_text, positional="path",
                                    extra=extra, after=after))


def _inspect(cfg: Any, values: dict[str, Any]) -> None:
    inspect_problems(cfg, as_json=bool(values.get("as_json")))


def _convert(cfg: Any, values: dict[str, Any]) -> None:
    convert_problems(cfg, values["out"])


_data_command("inspect", _inspect, "Counts by split, difficulty and kind; tests per problem; share with public tests.",
              [click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON object.")])
_data_command("convert", _convert, "Write problems in the canonical JSONL format.",
              [click.Option(["--out"], type=click.Path(dir_okay=False), required=True,
                            help="Canonical problems JSONL to write.")])


@app.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="report.md to write (plots and report.json beside it).")
@click.option("--html", type=click.Path(dir_okay=False), default=None,
              help="Also write this self-contained HTML page to browse the runs problem by problem.")
@click.option("--summary-into", type=click.Path(dir_okay=False), default=None,
              help="Also put the Summary table into this markdown file (e.g. a README), replacing the lines "
                   "between its '<!-- summary:start -->' and '<!-- summary:end -->' lines.")
def report(results: tuple[str, ...], out: str, html: str | None, summary_into: str | None) -> None:
    """Tables and plots from results.json files (baseline against CodePLAN when both are given)."""
    def run(**_: Any) -> None:
        from codeplan.report import write_report

        write_report(list(results), out, html=html, summary_into=summary_into)
        click.echo(f"wrote {out} (report.json and plots beside it)" + (f" and {html}" if html else "")
                   + (f"; the summary table into {summary_into}" if summary_into else ""))

    _user_errors(run)()


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--arm", "arms", multiple=True, metavar="NAME",
              help="Run only this run of the file (an arm's name, or MODE/STRATEGY) and the stages it needs; "
                   "repeatable. The report still shows every run that has results.")
def run(config: str, arms: tuple[str, ...]) -> None:
    """The whole pipeline from one config; stages whose outputs are complete are skipped."""
    def go(**_: Any) -> None:
        from codeplan.pipeline import run_pipeline

        run_pipeline(config, only=list(arms) or None)

    _user_errors(go)()


def main() -> None:  # pragma: no cover - console entry point
    app()
