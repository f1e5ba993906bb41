"""The training loop: one `accelerate` loop for every student, task schedule and scale.

Why a loop of our own rather than the HF Trainer: per-micro-batch task alternation, the switchable
plan head, packing with per-example position resets and per-task loss logging are each a line or
two here and a fight with Trainer's callbacks there. `accelerate` still gives DDP / FSDP /
DeepSpeed, mixed precision, gradient accumulation and full-state checkpoints, so the same file runs
under `accelerate launch` unchanged.

`train` reads top to bottom: set-up (setup.py), resume, the optimizer steps (here), logging
(progress.py), then the final model and summary (outputs.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from codeplan.output_lock import locks_output, main_rank
from codeplan.train.collate import collate
from codeplan.train.config import Task, TrainConfig
from codeplan.train.examples import IGNORE
from codeplan.train.outputs import SUMMARY, finish, finished, resume, save_checkpoint, write_config
from codeplan.train.progress import LOG, Progress, truncate_log
from codeplan.train.schedule import iter_micro_batches
from codeplan.train.setup import Run, set_up, start_accelerator


@locks_output(lambda cfg: cfg.out, when=main_rank)  # one lock per run, not one per rank
def train(cfg: TrainConfig) -> Path:
    """Fine-tune `cfg.student` and save it in Hugging Face format in `cfg.out`; returns `cfg.out`.

    `train_summary.json` is written last, atomically: its presence (with the weights beside it) means
    the run is complete.
    """
    out = Path(cfg.out)
    if finished(cfg, out):
        print(f"{out}: already trained ({SUMMARY} present); nothing to do")
        return out
    accelerator, precision = start_accelerator(cfg)
    if accelerator.is_main_process:
        write_config(cfg, out)
    run = set_up(cfg, accelerator, precision)
    step = resume(run)
    truncate_log(out / LOG, step, run.main)
    schedule = iter_micro_batches(run.sizes, run.tasks, cfg.schedule, run.global_batch, cfg.seed)
    for _ in range(step * cfg.micro_batches_per_step()):  # replay the data order up to the resume point
        next(schedule)
    progress = Progress(run, step)
    step = _steps(run, step, schedule, progress)
    val_losses: dict[str, float] = {}
    if run.val_enc:
        val_losses = validate(run)
        progress.validated(val_losses, step)
    progress.close()
    finish(run, step, progress, val_losses)
    # Every rank leaves the process group before exiting: a rank whose communication threads are
    # still alive at exit can abort ("terminate called without an active exception"), and the
    # launcher then fails a run whose model is already saved.
    accelerator.end_training()
    return out


def _steps(run: Run, step: int, schedule: Iterator[tuple[Task, list[int]]], progress: Progress) -> int:
    """Optimizer steps from `step` to the last, validating and saving checkpoints as configured;
    returns the last step done. On Ctrl-C the last finished step is saved first, so `--resume`
    loses nothing done."""
    cfg = run.cfg
    last_saved = step
    run.model.train()
    try:
        while step < run.total_steps:
            sums, tokens, seq_lens, seconds = optimizer_step(run, schedule)
            step += 1
            progress.step_done(step, sums, tokens, seq_lens, seconds)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < run.total_steps and run.val_enc:
                progress.validated(validate(run), step)
            if cfg.save_every and step % cfg.save_every == 0 and step < run.total_steps:
                save_checkpoint(run.accelerator, run.out, step, cfg)
                last_saved = step
    except KeyboardInterrupt:
        run.optimizer.zero_grad(set_to_none=True)
        if step > last_saved:
            save_checkpoint(run.accelerator, run.out, step, cfg)
        progress.steps_done()
        raise
    progress.steps_done()
    return step


def optimizer_step(run: Run, schedule: Iterator[tuple[Task, list[int]]]) -> tuple[torch.Tensor, int, list[int], float]:
    """One optimizer step over `cfg.micro_batches_per_step()` micro-batches. Returns, summed over ranks, per task
    (loss x target tokens, target tokens), and the tokens seen; then this rank's sequence lengths
    and the step's seconds."""
    cfg, accelerator, model = run.cfg, run.accelerator, run.model
    started = time.perf_counter()
    sums = torch.zeros(len(run.tasks), 2, device=accelerator.device)  # per task: loss*tokens, tokens
    tokens = 0
    seq_lens: list[int] = []
    rank = accelerator.process_index
    for _ in range(cfg.micro_batches_per_step()):
        task, indices = next(schedule)
        mine = [run.by_task[task][i] for i in indices[rank * cfg.micro_batch_size:(rank + 1) * cfg.micro_batch_size]]
        batch = {k: v.to(accelerator.device) for k, v in collate(
            mine, run.tokenizer.pad_token_id, encoder_decoder=run.encoder_decoder, packing=run.packing,
            pack_length=cfg.effective_pack_length()).items()}
        tokens += sum(len(e.input_ids) + (len(e.labels) if run.encoder_decoder else 0) for e in mine)
        seq_lens += [len(e.input_ids) for e in mine]
        if run.task_head is not None:
            run.task_head.use_plan = task == "plan"
        with accelerator.accumulate(model):
            loss, count = forward_loss(model, batch, causal=not run.encoder_decoder, decoder_inputs=run.decoder_inputs)
            accelerator.backward(loss * cfg.weight(task))
            if accelerator.sync_gradients and cfg.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        t = run.tasks.index(task)
        sums[t, 0] += loss.detach().float() * count
        sums[t, 1] += count
    run.scheduler.step()
    sums = accelerator.reduce(sums, reduction="sum")
    tokens = int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), reduction="sum"))
    return sums, tokens, seq_lens, time.perf_counter() - started


@torch.no_grad()
def validate(run: Run) -> dict[str, float]:
    """Mean target-token loss per task on the held-out problems (sharded over ranks)."""
    model, val_enc, cfg, accelerator, task_head = run.model, run.val_enc, run.cfg, run.accelerator, run.task_head
    model.eval()
    tasks = sorted({e.task for e in val_enc})
    sums = torch.zeros(len(tasks), 2, device=accelerator.device)
    mine = val_enc[accelerator.process_index::accelerator.num_processes]
    for t, task in enumerate(tasks):
        items = [e for e in mine if e.task == task]
        if task_head is not None:
            task_head.use_plan = task == "plan"
        for start in range(0, len(items), cfg.micro_batch_size):
            batch = {k: v.to(accelerator.device) for k, v in collate(
                items[start:start + cfg.micro_batch_size], run.tokenizer.pad_token_id,
                encoder_decoder=run.encoder_decoder, packing=run.packing, pack_length=cfg.effective_pack_length()).items()}
            loss, count = forward_loss(model, batch, causal=not run.encoder_decoder, decoder_inputs=run.decoder_inputs)
            sums[t, 0] += loss.float() * count
            sums[t, 1] += count
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    return {task: round(float(sums[t, 0] / sums[t, 1]), 6) for t, task in enumerate(tasks) if sums[t, 1] > 0}


def token_loss(logits: torch.Tensor, labels: torch.Tensor, *, causal: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over target tokens and their count (prompt and padding are IGNORE)."""
    if causal:
        # Shift the labels, not the logits: slicing the (batch, length, vocab) logits would copy them.
        labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((labels != IGNORE).sum())


def forward_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor], *, causal: bool,
                 decoder_inputs: Any = None) -> tuple[torch.Tensor, int]:
    """Mean target-token loss of one micro-batch (and its target-token count)."""
    labels = inputs["labels"]
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    if not causal:
        kwargs["decoder_input_ids"] = decoder_inputs(labels)
    logits = model(**kwargs, use_cache=False).logits
    total, count = token_loss(logits, labels, causal=causal)
    return total / max(count, 1), count
