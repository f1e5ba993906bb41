"""Stage 2: multi-task fine-tuning of the student (CodePLAN) or code-only fine-tuning (baseline).

Public API: `TrainConfig`, `train(cfg) -> Path` (the folder holding the final model), `is_trained(folder)`.
"""

from codeplan.train.config import TrainConfig
from codeplan.train.loop import train
from codeplan.train.outputs import is_trained

__all__ = ["TrainConfig", "is_trained", "train"]
