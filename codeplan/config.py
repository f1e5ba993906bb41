"""Typed stage configs. A YAML file holds a config's fields; command-line flags override them.

Each stage function takes exactly one of these configs, so a YAML file *is* a saved call of that
function, and `codeplan run` is the same configs nested under one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from codeplan.errors import InputError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base for all stage configs: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # Keys of earlier versions -> where the setting lives now ("" when it was removed, with the
    # reason after a colon): an old config file or flag fails with the new spelling, never silently.
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_old_keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for old, new in cls.renamed.items():
                if old in values:
                    raise ValueError(f"'{old}' was removed: {new.split(':', 1)[1].strip()}" if new.startswith(":")
                                     else f"'{old}' is now '{new}'")
        return values

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
        message = first["msg"].removeprefix("Value error, ")
        raise InputError(message, path=source, field=field or None) from None


class DataConfig(StageConfig):
    """Which problems a stage works on: a path (file, folder, `humaneval`, `hub:ID`) and a selection."""

    path: str = Field(description="File, folder, 'sample', 'humaneval', or hub:DATASET_ID.",
                      json_schema_extra={"flag": "--data"})
    format: str | None = Field(None, description="Force the data format instead of detecting it.")
    split: str | None = Field(None, description="Split to select (e.g. train, test).")
    difficulty: list[str] | None = Field(None, description="Comma-separated difficulties to keep.")
    limit: int | None = Field(None, ge=1, description="Keep at most this many problems.")
    skip_invalid: bool = Field(False, description="Skip bad records with a counted warning.")


class BackendConfig(StageConfig):
    """How a local model generates (HF transformers, llama.cpp, vLLM): one group shared by distill's
    local teacher, generate and serve. A server model (openai:URL) ignores it."""

    batch_size: int = Field(16, ge=1, description="Sequences decoded together (prompts x n).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype for the HF backend (auto: the checkpoint's, float32 on CPU).")
    threads: int | None = Field(None, ge=1, description="CPU threads (None: the library's default; 1 is fastest on a busy CPU).")
    device: str | None = Field(None, description="HF backend device (cpu, cuda, cuda:1); default: cuda when present.")
