"""The trainer's settings: one dataclass that round-trips through JSON with the rest of a run."""

from __future__ import annotations

from dataclasses import dataclass

from alltokens.nn.config import Config, ConfigError


@dataclass
class TrainConfig(Config):
    """Optimisation, evaluation and checkpointing of one run; the model and data are configured apart.

    Defaults follow nanoGPT (`train.py`): AdamW (0.9, 0.95), weight decay 0.1, clipping at 1.0, linear
    warmup then cosine decay to `min_lr`.
    """

    steps: int = 1000  # optimiser updates
    batch_size: int = 16  # sequences per micro-batch on each rank (read by the recipe's data)
    grad_accum: int = 1  # micro-batches summed into one update
    lr: float = 1e-3  # peak learning rate, reached after warmup
    min_lr: float = 1e-4  # end of the cosine decay
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on matrices only (see `train.optim.param_groups`)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    eval_every: int = 100  # held-out loss every N steps (and at the last step); 0 = never
    eval_steps: int = 20  # validation batches per evaluation
    log_every: int = 10  # metrics.jsonl line and progress-bar refresh every N steps
    save_every: int = 200  # checkpoint every N steps (and at the last step and on Ctrl-C)
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast (works on CPU and CUDA)
    compile: bool = False  # torch.compile the model for training

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_steps", "log_every", "save_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "weight_decay", "grad_clip", "min_lr"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.min_lr > self.lr:
            raise ConfigError(
                f"TrainConfig needs 0 <= min_lr <= lr with lr > 0, got lr={self.lr} min_lr={self.min_lr}"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"TrainConfig betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")
