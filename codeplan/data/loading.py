"""Format detection, dispatch to one loader per source format, and selection (split, difficulty, limit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from codeplan.config import DataConfig
from codeplan.data.apps import load_apps_folder, load_apps_jsonl
from codeplan.data.canonical import load_canonical
from codeplan.data.common import InvalidRecords, first_record
from codeplan.data.hub import load_hub
from codeplan.data.humaneval import load_evalplus, load_humaneval, packaged_humaneval_path
from codeplan.data.mbpp import load_mbpp
from codeplan.errors import InputError
from codeplan.problems import Problem

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_PROBLEMS = SAMPLE_DIR / "problems.jsonl"
SAMPLE_PLANS = SAMPLE_DIR / "plans.jsonl"

FORMATS = ("canonical", "apps-jsonl", "apps-folder", "mbpp", "humaneval", "evalplus")
ALIASES = ("sample", "humaneval")
HUB_PREFIX = "hub:"

Loader = Callable[[Path, InvalidRecords], Iterator[Problem]]
LOADERS: dict[str, Loader] = {"canonical": load_canonical, "apps-jsonl": load_apps_jsonl,
                              "apps-folder": load_apps_folder, "mbpp": load_mbpp, "humaneval": load_humaneval,
                              "evalplus": load_evalplus}


def detect_format(path: Path) -> str:
    """Name the format of a file or folder from its layout or its first record's fields."""
    if path.is_dir():
        return "apps-folder"
    record = first_record(path)
    if record is None:
        raise InputError("cannot detect the format: the first line is not a JSON object (use --format)", path=path,
                         line=1)
    keys = set(record)
    if {"kind", "statement"} <= keys:
        return "canonical"
    if "question" in keys and ({"input_output", "solutions"} & keys):
        return "apps-jsonl"
    if {"code", "test_list", "task_id"} <= keys:
        return "mbpp"
    if {"base_input", "entry_point"} <= keys:
        return "evalplus"
    if {"prompt", "entry_point", "test"} <= keys:
        return "humaneval"
    raise InputError(f"cannot detect the format from the fields {sorted(keys)} (use --format, one of "
                     f"{', '.join(FORMATS)})", path=path, line=1)


def resolve(cfg: DataConfig) -> tuple[str, Path | str]:
    """(format, location) for a config: an alias, a hub id, or a path on disk."""
    if cfg.format is not None and cfg.format not in FORMATS:
        raise InputError(f"unknown format '{cfg.format}' (one of {', '.join(FORMATS)})", path=cfg.path, field="format")
    if cfg.path.startswith(HUB_PREFIX):
        return "hub", cfg.path[len(HUB_PREFIX):]
    path = Path(cfg.path).expanduser()
    if not path.exists():
        # Aliases only where no such file or folder exists, so a local file named like one still loads.
        if cfg.path == "sample":
            return cfg.format or "canonical", SAMPLE_PROBLEMS
        if cfg.path == "humaneval":
            return cfg.format or "humaneval", packaged_humaneval_path()
        raise InputError("no such file or folder (nor an alias: 'sample', 'humaneval', or hub:DATASET_ID)",
                         path=cfg.path)
    return cfg.format or detect_format(path), path


def load_problems(cfg: DataConfig) -> list[Problem]:
    """Load, validate and select the problems `cfg` names. See docs/data.md."""
    invalid = InvalidRecords(cfg.skip_invalid)
    fmt, location = resolve(cfg)
    if fmt == "hub":
        problems = list(load_hub(str(location), cfg, invalid))
    else:
        if fmt not in LOADERS:
            raise InputError(f"format '{fmt}' is not supported", path=location, field="format")
        problems = list(LOADERS[fmt](Path(location), invalid))
    problems = _unique_ids(problems, location, invalid)
    invalid.warn()
    return select(problems, cfg, location)


def _unique_ids(problems: list[Problem], location: Path | str, invalid: InvalidRecords) -> list[Problem]:
    """Every stage keys its records by problem id, so a repeated id is bad input (first one kept)."""
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if problem.id in seen:
            invalid.add(InputError("duplicate problem id", path=location, record=problem.id, field="id"))
            continue
        seen.add(problem.id)
        unique.append(problem)
    return unique


def select(problems: list[Problem], cfg: DataConfig, location: Path | str) -> list[Problem]:
    """Keep the requested split and difficulties, then the first `limit` problems."""
    if cfg.split is not None:
        unknown = [p.id for p in problems if p.split is None]
        if unknown:
            raise InputError(f"--split '{cfg.split}' asked, but this data does not say which split problem "
                             f"{unknown[0]} belongs to (drop --split, or use data that carries splits)",
                             path=location, field="split")
        problems = [p for p in problems if p.split == cfg.split]
    if cfg.difficulty:
        wanted = set(cfg.difficulty)
        present = {p.difficulty for p in problems if p.difficulty}
        if problems and not wanted & present:
            # A typo or data without levels would otherwise select nothing, silently.
            raise InputError(f"no problem has difficulty {', '.join(sorted(wanted))} (present: "
                             f"{', '.join(sorted(present)) or 'none'})", path=location, field="difficulty")
        problems = [p for p in problems if p.difficulty in wanted]
    if cfg.limit is not None:
        if cfg.limit < 0:
            raise InputError("limit must be >= 0", path=location, field="limit")
        problems = problems[: cfg.limit]
    return problems
