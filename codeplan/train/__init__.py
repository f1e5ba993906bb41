"""Stage 2: multi-task fine-tuning of the student (CodePLAN) or code-only fine-tuning (baseline).

Public API: `TrainConfig`, `train(cfg) -> Path` (the folder holding the final model).
"""

from codeplan.train.config import TrainConfig
from codeplan.train.loop import train

__all__ = ["TrainConfig", "train"]
