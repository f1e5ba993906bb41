"""The package's shape: stages never import each other, no import cycles, one flag per config field."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import STAGES, app, config_flags
from codeplan.config import InputError
from codeplan.pipeline import load_run_config

PACKAGE = Path(__file__).resolve().parents[1] / "codeplan"
# Each stage a user runs; `pipeline` and `cli` orchestrate them and may import them all.
STAGE_MODULES = {"distill", "train", "generate", "evaluate", "report", "serve", "export"}
ORCHESTRATORS = {"pipeline", "cli", "__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {_module_name(p) for p in FILES}


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """codeplan modules imported by a file (anywhere in it, or only at module level).
    `from codeplan.judge import compare` imports the submodule, not the package's __init__."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("codeplan"):
            submodules = {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("codeplan"))
    return found


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGE_MODULES else None




@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_reaches_into_a_stage_it_is_not_part_of(path: Path) -> None:
    name = _module_name(path)
    if name.split(".")[-1] in ORCHESTRATORS and name.count(".") == 1:
        return
    own = _stage_of(name)
    foreign = sorted(m for m in _imports(path) if _stage_of(m) not in (None, own))
    assert not foreign, f"{name} imports {foreign}: a stage or shared module must not import a stage"


def test_module_level_imports_have_no_cycle() -> None:
    modules = {_module_name(p): p for p in FILES}
    graph = {name: {m for m in _imports(path, top_level_only=True) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]
                                                                   if nxt in trail else [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_layout_in_the_readme_names_every_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    top = {p.name for p in PACKAGE.iterdir() if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
           or (p.is_dir() and (p / "__init__.py").exists())}
    missing = sorted(name for name in top if name.removesuffix(".py") + ("/" if not name.endswith(".py") else ".py")
                     not in layout)
    assert not missing, f"README's Layout section lacks {missing}"


@pytest.mark.parametrize("command", sorted(STAGES))
def test_every_stage_command_builds_with_one_flag_per_field(command: str) -> None:
    built = app.get_command(None, command)  # raises when two fields claim one flag
    names = [opt for p in built.params for opt in getattr(p, "opts", [])]
    assert len(names) == len(set(names))
    assert "--config" in names


def test_flags_follow_the_config_fields() -> None:
    from codeplan.evaluate import EvaluateConfig
    from codeplan.generate import GenerateConfig

    evaluate_flags = {f.option.opts[0]: f.path for f in config_flags(EvaluateConfig)}
    assert evaluate_flags["--workers"] == ("judge", "workers") and evaluate_flags["--data"] == ("data", "path")
    generate_flags = {f.option.opts[0]: f.path for f in config_flags(GenerateConfig)}
    assert generate_flags["--judge-workers"] == ("judge", "workers")
    assert generate_flags["--batch-size"] == ("backend", "batch_size")


@pytest.mark.parametrize("args, new", [
    (["distill", "--timeout", "5"], "--request-timeout"),
    (["generate", "--judge-timeout", "2"], None),
    (["generate", "--judge-early-exit"], "was removed: plan selection now runs every public test"),
    (["train", "--plan-code"], "--plan-conditioned-code"),
    (["train", "--strict"], "--stop-on-bad-input"),
])
def test_an_old_flag_fails_with_its_new_spelling(args: list[str], new: str | None) -> None:
    result = CliRunner().invoke(app, args)
    if new is None:  # flags that still exist parse (the run then stops at the missing required fields)
        assert "is now" not in result.output
        return
    assert result.exit_code == 2 and (new if new.startswith("was removed") else f"is now {new}") in result.output


def test_run_config_sections_are_typed(tmp_path: Path) -> None:
    base = "name: x\ndata: {train: {path: sample}, test: {path: sample}}\nplans: sample\nstudent: s\n"
    cases = {"generate: {num_plans: many}": "generate.num_plans",
             "generate: {judge_workers: 2}": "is now 'judge.workers'",
             "evaluate: {workers: 2}": "is now 'judge.workers'",
             "train: {no_such_setting: 1}": "train.no_such_setting",
             "evaluate: {samples: x.jsonl}": "set by the pipeline"}
    for section, expected in cases.items():
        path = tmp_path / "run.yaml"
        path.write_text(base + section + "\n")
        with pytest.raises(InputError) as err:
            load_run_config(path)
        assert expected in str(err.value), (section, str(err.value))


def test_the_command_list_and_a_light_command_do_not_import_torch() -> None:
    import subprocess
    import sys

    script = ("import sys\nfrom click.testing import CliRunner\nfrom codeplan.cli import app\n"
              "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
              "assert CliRunner().invoke(app, ['evaluate', '--help']).exit_code == 0\n"
              "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
