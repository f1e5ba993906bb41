"""`hub:DATASET_ID`: a dataset from the Hugging Face hub through `datasets.load_dataset`.

The columns decide the format (APPS, MBPP, HumanEval, evalplus, canonical) exactly as for a
local file. An unreachable hub fails within seconds with a SetupError instead of hanging.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from codeplan.config import DataConfig
from codeplan.data.apps import apps_from_record
from codeplan.data.common import InvalidRecords
from codeplan.data.humaneval import evalplus_from_record, humaneval_from_record
from codeplan.data.mbpp import mbpp_from_record
from codeplan.errors import InputError, SetupError
from codeplan.problems import Problem, problem_from_record

CONNECT_TIMEOUT_S = 5.0


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A TCP connection to the hub endpoint within `timeout`; False when offline mode is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or \
            os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _go_offline(datasets: Any) -> None:
    """Switch datasets and huggingface_hub to offline mode: both read the flag once, at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    for module, name in ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE")):
        if hasattr(module, name):
            setattr(module, name, True)
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass


def _converter(columns: set[str]):
    if {"kind", "statement"} <= columns:
        return problem_from_record
    if "question" in columns and ({"input_output", "solutions"} & columns):
        return apps_from_record
    if {"code", "test_list", "task_id"} <= columns:
        return mbpp_from_record
    if {"base_input", "entry_point"} <= columns:
        return evalplus_from_record
    if {"prompt", "entry_point", "test"} <= columns:
        return humaneval_from_record
    return None


def load_hub(dataset_id: str, cfg: DataConfig, invalid: InvalidRecords) -> Iterator[Problem]:
    try:
        import datasets
    except ImportError:
        raise SetupError("hub: datasets need the package datasets: pip install datasets") from None
    # Timeouts for the hub client too, so a slow connection cannot hang the load.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    online = hub_reachable()
    if not online:
        _go_offline(datasets)  # cache only: fails at once instead of retrying the network for minutes
    try:
        loaded = datasets.load_dataset(dataset_id, split=cfg.split)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFoundError)
        reason = "the Hugging Face hub is unreachable (offline) and the dataset is not cached" if not online else \
            f"{type(err).__name__}: {err}"
        raise SetupError(f"cannot load hub:{dataset_id}: {reason}; download it and pass its local path instead") \
            from None
    parts: list[tuple[str | None, Any]] = [(cfg.split, loaded)] if cfg.split else list(loaded.items())
    source = f"hub:{dataset_id}"
    several = len(parts) > 1
    for split, rows in parts:
        convert = _converter(set(rows.column_names))
        if convert is None:
            raise InputError(f"cannot detect the format from the columns {sorted(rows.column_names)}", path=source)
        for index, row in enumerate(rows):
            where = f"{source}[{split}]" if split else source
            try:
                problem = convert(dict(row), path=where, line=index + 1)
            except InputError as err:
                invalid.add(err)
                continue
            # The hub names the split: keep it (MBPP's task_id ranges agree), and keep ids unique across splits.
            updates: dict[str, Any] = {"split": problem.split or split}
            if several and problem.source == "apps":
                updates["id"] = f"{split}/{problem.id}"
            yield problem.model_copy(update=updates)
