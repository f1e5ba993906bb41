"""What a training run leaves in OUT, and how a run starts from it again.

OUT holds `train_config.yaml` (written first: a folder never mixes two runs' settings),
`train_log.jsonl` (progress.py), `checkpoints/step-N/` (full state, for `--resume`), the final
model in Hugging Face format, and `train_summary.json`, written last and atomically: its presence
beside the weights means the run is complete. A summary without weights (a record committed without
its model) is trained again.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from codeplan.errors import InputError
from codeplan.jsonl import write_json
from codeplan.train import heads
from codeplan.train.schedule import iter_micro_batches
from codeplan.train.config import TrainConfig
from codeplan.train.progress import Progress
from codeplan.train.setup import Run

SUMMARY = "train_summary.json"
CONFIG = "train_config.yaml"
CHECKPOINTS = "checkpoints"
STATE = "trainer_state.json"


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    """Settings that define a run (everything but how it is launched)."""
    values = cfg.model_dump(mode="json")
    for key in ("resume", "progress"):
        values.pop(key, None)
    return values


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints (those holding trainer_state.json), oldest first."""
    found = []
    for path in (out / CHECKPOINTS).glob("step-*"):
        if (path / STATE).is_file() and path.name[5:].isdigit():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def finished(cfg: TrainConfig, out: Path) -> bool:
    """True when OUT already holds this finished run. Refuses to mix different runs in one folder."""
    saved = out / CONFIG
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        previous.pop("resume", None)
        previous.pop("progress", None)
        current = _settings(cfg)
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if changed and ((out / SUMMARY).is_file() or checkpoints(out)):
            raise InputError(f"this folder holds a run with other settings ({', '.join(changed)}); "
                             "choose another --out or delete it", path=saved, field=changed[0])
    if (out / SUMMARY).is_file():
        if has_weights(out):
            return True
        # A summary without weights is a record kept without its model (an experiment commits the
        # small files, not the weights): the model is made again, and its summary replaces the record.
        print(f"{out}: {SUMMARY} is here but the model's weights are not; training again")
        return False
    if checkpoints(out) and not cfg.resume:
        raise InputError("holds checkpoints of an unfinished run: pass --resume to continue it, or choose an "
                         "empty folder", path=out / CHECKPOINTS)
    return False


def has_weights(out: Path) -> bool:
    """True when OUT holds a saved model's weights: `_save_final` writes safetensors only (full model,
    its shards, or a LoRA adapter)."""
    return any(out.glob("*.safetensors"))


def is_trained(out: Path) -> bool:
    """True when OUT holds a finished run: its summary and the model's weights."""
    return (out / SUMMARY).is_file() and has_weights(out)


def write_config(cfg: TrainConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / CONFIG)


def resume(run: Run) -> int:
    """The optimizer step the run starts from: with `--resume`, its last checkpoint's (whose state
    is loaded); else 0."""
    found = checkpoints(run.out)
    if not (run.cfg.resume and found):
        return 0
    step, path = found[-1]
    run.accelerator.load_state(str(path))
    run.accelerator.step = 0  # checkpoints are taken at optimizer-step boundaries
    if run.main:
        print(f"resuming from {path} (step {step} of {run.total_steps})")
    return step


def save_checkpoint(accelerator, out: Path, step: int, cfg: TrainConfig) -> None:
    """Full state (weights, optimizer, scheduler, RNG) in checkpoints/step-N; trainer_state.json
    goes in last, so a half-written checkpoint is never resumed from."""
    target = out / CHECKPOINTS / f"step-{step}"
    if accelerator.is_main_process and target.exists():
        shutil.rmtree(target)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        write_json(target / STATE, {"step": step, "micro_step": step * cfg.micro_batches_per_step()})
        if cfg.keep_checkpoints:
            for _, old in checkpoints(out)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def finish(run: Run, step: int, progress: Progress, val_losses: dict[str, float]) -> None:
    """Save the final model, then write the summary (main process; every rank takes part)."""
    accelerator, model = run.accelerator, run.model
    accelerator.wait_for_everyone()
    extras: dict[str, Any] = {}
    if run.world > 1 and not run.sharded:
        # Data-parallel replicas must end with identical weights: each rank's fingerprint goes in
        # the summary, and a difference (a desynchronised rank) is said loudly.
        from accelerate.utils import gather_object  # heavy: imported when a run ends, as in setup.py

        fingerprints = gather_object([weights_sha256(accelerator.unwrap_model(model))])
        extras["replica_weights_sha256"] = fingerprints
        if run.main and len(set(fingerprints)) > 1:
            print(f"warning: the {run.world} processes ended with different weights: {fingerprints}")
    if run.main:
        extras |= _save_final(accelerator.unwrap_model(model), run.tokenizer, run.cfg, run.out, run.precision,
                             sharded=run.sharded, state_dict=accelerator.get_state_dict(model) if run.sharded else None)
    elif run.sharded:
        accelerator.get_state_dict(model)  # every rank takes part in gathering the full weights
    accelerator.wait_for_everyone()
    if run.main:
        summary = _summary(run, step, progress, val_losses, extras)
        write_json(run.out / SUMMARY, summary)
        _print_report(summary)
    accelerator.wait_for_everyone()


def _summary(run: Run, step: int, progress: Progress, val_losses: dict[str, float],
             extras: dict[str, Any]) -> dict[str, Any]:
    cfg = run.cfg
    return {
        "student": cfg.student,
        "mode": cfg.mode,
        "tasks": run.tasks,
        "encoder_decoder": run.encoder_decoder,
        "prompt_format": {"chat_template": cfg.chat_template, "plan_conditioned_code": "plan_code" in run.tasks},
        "steps": step,
        "trained_on": trained_on(run, step),
        "micro_batches_per_epoch": run.per_epoch,
        "epochs_done": round(step * cfg.micro_batches_per_step() / run.per_epoch, 3),
        "world_size": run.world,
        "precision": run.precision,
        "packing": run.packing,
        "lora": cfg.lora,
        "parameters": run.n_params,
        "trainable_parameters": run.n_trainable,
        "final_train_loss": progress.last_losses,
        "val_loss": val_losses,
        "train_seconds_this_session": round(progress.seconds, 2),
        "tokens_per_s_this_session": round(progress.tokens_done / max(progress.seconds, 1e-9), 1),
        "data": run.report.as_dict(),
        **extras,
    }


def trained_on(run: Run, step: int) -> dict[str, dict[str, int]]:
    """Examples and tokens each task trained on over the whole run (all sessions, all ranks): the
    data order is a pure function of the seed, so it is replayed rather than logged. This is what
    makes a baseline and a CodePLAN student comparable: same code examples, same steps."""
    seen = {task: {"examples": 0, "tokens": 0} for task in run.tasks}
    schedule = iter_micro_batches(run.sizes, run.tasks, run.cfg.schedule, run.global_batch, run.cfg.seed)
    for _ in range(step * run.cfg.micro_batches_per_step()):
        task, indices = next(schedule)
        seen[task]["examples"] += len(indices)
        seen[task]["tokens"] += sum(len(run.by_task[task][i].input_ids) + (len(run.by_task[task][i].labels)
                                    if run.encoder_decoder else 0) for i in indices)
    return seen


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the model's state dict (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_dtype(precision: str) -> torch.dtype:
    return {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _save_final(model, tokenizer, cfg: TrainConfig, out: Path, precision: str, *, sharded: bool,
                state_dict: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """The final model in plain Hugging Face format directly in OUT (LoRA merged when asked; the
    plan head, if any, beside it and as plan_model/)."""
    dtype = save_dtype(precision)
    extras: dict[str, Any] = {"saved_dtype": str(dtype).removeprefix("torch.")}
    if cfg.lora and cfg.merge_lora:
        model = model.merge_and_unload()
    head = heads.remove_plan_head(model)
    model.config.use_cache = True
    if sharded:
        model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    else:
        model.to(dtype)
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if head is not None:
        heads.save_plan_head(head, out)
        extras["plan_head"] = heads.PLAN_HEAD_FILE
        if not (cfg.lora and not cfg.merge_lora):  # an unmerged adapter has no full model to copy
            heads.export_plan_model(model, head, out, tokenizer, dtype)
            extras["plan_model"] = heads.PLAN_MODEL_DIR
    if cfg.lora and not cfg.merge_lora:
        extras["lora_adapter"] = True  # OUT holds the adapter; transformers+peft load it over the base
    return extras


def _print_report(summary: dict[str, Any]) -> None:
    data = summary["data"]
    left_out = {k: v for k, v in data.items() if k.startswith(("plans_unknown", "plans_empty", "plans_bad",
                                                                 "problems_without", "excluded", "plans_not"))
                and v}
    print(f"trained {summary['steps']} steps ({summary['epochs_done']} epochs); examples {data['examples']}; "
          f"val {data['val_examples']}")
    if data["truncated"] or data["skipped_too_long"]:
        print(f"over the length limits: truncated {data['truncated']}, skipped {data['skipped_too_long']}")
    if left_out:
        print(f"left out: {left_out}")
    print(f"final train loss {summary['final_train_loss']}; val loss {summary['val_loss']}")
