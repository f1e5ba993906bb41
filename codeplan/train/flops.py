"""Model FLOPs utilisation: achieved training FLOPs over the accelerator's dense peak."""

from __future__ import annotations

import torch

# Dense bf16/fp16 tensor-core peaks (FLOP/s), by substring of the CUDA device name.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L40": 181e12, "L4": 121e12,
              "A10": 125e12, "A6000": 155e12, "4090": 165e12, "V100": 125e12, "T4": 65e12}


def peak_flops(device: torch.device) -> float | None:
    """None on CPU or an unknown GPU: MFU is then not reported rather than guessed."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS.items():
        if key in name:
            return value
    return None


def flops_per_token(config, n_params: int, seq_len: float) -> float:
    """Forward + backward: 6 FLOPs per parameter per token, plus attention scores (12 * layers *
    hidden * attended length), the PaLM-paper accounting."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", 0) or 0
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", 0) or 0
    return 6.0 * n_params + 12.0 * layers * hidden * seq_len
