"""Typed stage configs. A YAML file holds a config's fields; command-line flags override them.

Each stage function takes exactly one of these configs, so a YAML file *is* a saved call of that
function, and `codeplan run` is the same configs nested under one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from codeplan.errors import InputError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base for all stage configs: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, /, **overrides: Any) -> C:
        """Fields from `path` (YAML), then `overrides` whose value is not None."""
        values: dict[str, Any] = read_yaml(path) if path else {}
        return validate_config(cls, merge_settings(values, overrides), source=str(path) if path else "command line")

    def to_yaml(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def merge_settings(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides win where they are set (not None); nested mappings merge one level down."""
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            set_values = {k: v for k, v in value.items() if v is not None}
            merged[key] = {**merged[key], **set_values} if isinstance(merged.get(key), dict) else set_values
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError("config file not found", path=path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(err, 'problem', err)}", path=path,
                         line=mark.line + 1 if mark else None) from None
    if not isinstance(values, dict):
        raise InputError("expected a mapping of settings at the top level", path=path)
    return values


def validate_config(cls: type[C], values: dict[str, Any], *, source: str) -> C:
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InputError(first["msg"], path=source, field=field) from None


class DataConfig(StageConfig):
    """Which problems a stage works on: a path (file, folder, `humaneval`, `hub:ID`) and a selection."""

    path: str
    format: str | None = None  # detected from the path when None
    split: str | None = None
    difficulty: list[str] | None = None
    limit: int | None = None
    skip_invalid: bool = False
