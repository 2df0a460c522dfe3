"""Training: one generic `Trainer`, objectives `(model, batch) -> (loss, metrics)`, AdamW with a
warmup + cosine schedule, atomic checkpoints with exact resume, and per-task recipes in `recipes/`."""

from alltokens.train.config import TrainConfig
from alltokens.train.objectives import next_token
from alltokens.train.trainer import Trainer, TrainingInterrupted

__all__ = ["TrainConfig", "Trainer", "TrainingInterrupted", "next_token"]
