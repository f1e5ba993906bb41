"""What a training run reports as it goes: one `train_log.jsonl` record per optimizer step (loss
per task, learning rate, tokens/s, MFU), TensorBoard scalars every `log_every` steps, the progress
bar, and the figures the summary takes (last losses, tokens and seconds this session).

Only the main process writes; every rank computes the same record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from codeplan.train import heads
from codeplan.train.config import TrainConfig
from codeplan.train.flops import flops_per_token, peak_flops
from codeplan.train.setup import Run

LOG = "train_log.jsonl"


class Progress:
    """The log file, TensorBoard and the bar of one session of a run (from `step` on)."""

    def __init__(self, run: Run, step: int) -> None:
        self.run = run
        self.writer = _tensorboard(run.cfg, run.out) if run.main else None
        self.peak = peak_flops(run.accelerator.device) if run.precision != "no" else None
        self.bar = tqdm(total=run.total_steps, initial=step, desc="train", disable=not (run.main and run.cfg.progress),
                        dynamic_ncols=True)
        self.last_losses: dict[str, float] = {}  # per task, of the last step that had it
        self.tokens_done = 0
        self.started = time.perf_counter()
        self.seconds = 0.0  # of training steps, set by `steps_done`

    def step_done(self, step: int, sums: torch.Tensor, tokens: int, seq_lens: list[int], seconds: float) -> None:
        """Report one optimizer step: `sums` holds per task (loss x tokens, tokens), over all ranks."""
        run = self.run
        self.tokens_done += tokens
        for t, task in enumerate(run.tasks):
            if sums[t, 1] > 0:
                self.last_losses[task] = float(sums[t, 0] / sums[t, 1])
        tok_s = tokens / max(seconds, 1e-9)
        record: dict[str, Any] = {"step": step, "lr": run.scheduler.get_last_lr()[0], "tokens": tokens,
                                  "tokens_per_s": round(tok_s, 1),
                                  "loss": {task: round(float(sums[t, 0] / sums[t, 1]), 6)
                                           for t, task in enumerate(run.tasks) if sums[t, 1] > 0}}
        if self.peak:
            seq = sum(seq_lens) / max(len(seq_lens), 1)
            record["mfu"] = round(tok_s * flops_per_token(heads.base_lm(run.accelerator.unwrap_model(run.model)).config,
                                                          run.n_params, seq) / (self.peak * run.world), 4)
        if run.main:
            _append_log(run.out / LOG, record)
            if self.writer is not None and step % run.cfg.log_every == 0:
                for task, value in record["loss"].items():
                    self.writer.add_scalar(f"train/loss_{task}", value, step)
                self.writer.add_scalar("train/lr", record["lr"], step)
                self.writer.add_scalar("train/tokens_per_s", tok_s, step)
                if "mfu" in record:
                    self.writer.add_scalar("train/mfu", record["mfu"], step)
            postfix = {task: f"{v:.3f}" for task, v in self.last_losses.items()}
            postfix["tok/s"] = f"{tok_s:.0f}"
            if "mfu" in record:
                postfix["mfu"] = f"{record['mfu']:.1%}"
            self.bar.set_postfix(postfix)
        self.bar.update(1)

    def validated(self, losses: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for task, value in losses.items():
                self.writer.add_scalar(f"val/loss_{task}", value, step)

    def steps_done(self) -> None:
        """The last step is done (or interrupted): close the bar, stop the clock."""
        self.bar.close()
        self.seconds = time.perf_counter() - self.started

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard(cfg: TrainConfig, out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a missing logger must not stop training
        return None
    return SummaryWriter(log_dir=cfg.logging_dir or str(out / "logs"))


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def truncate_log(path: Path, step: int, main: bool) -> None:
    """Drop log records past the step a run restarts from (they will be redone)."""
    if not main or not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a killed run
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
