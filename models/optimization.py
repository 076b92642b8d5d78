"""Optimizer and learning-rate schedule shared by pretraining and fine-tuning."""
from __future__ import annotations

import math

import keras

# BERT excludes LayerNorm parameters and biases from weight decay.
WEIGHT_DECAY_EXCLUDED = ["bias", "layer_norm", "LayerNorm", "gamma", "beta"]


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.maximum(float(self.warmup_steps), 1.0)
        decay_span = keras.ops.maximum(float(self.total_steps - self.warmup_steps), 1.0)
        warm = self.peak * step / warmup
        decayed = self.peak * keras.ops.maximum(0.0, 1.0 - (step - self.warmup_steps) / decay_span)
        return keras.ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def adamw(learning_rate: float, warmup_steps: int, total_steps: int,
          weight_decay: float = 0.01, clipnorm: float = 1.0) -> keras.optimizers.Optimizer:
    """AdamW with BERT's schedule, decay exclusions and global-norm gradient clipping."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, warmup_steps, total_steps),
        weight_decay=weight_decay,
        epsilon=1e-6,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=WEIGHT_DECAY_EXCLUDED)
    return optimizer


def lamb(learning_rate: float, warmup_steps: int, total_steps: int,
         weight_decay: float = 0.01, clipnorm: float = 1.0) -> keras.optimizers.Optimizer:
    """LAMB (layer-wise adaptive moments, You et al. 2019) with the same schedule and exclusions;
    the usual choice for large-batch pretraining."""
    optimizer = keras.optimizers.Lamb(
        learning_rate=WarmupLinearDecay(learning_rate, warmup_steps, total_steps),
        epsilon=1e-6,
        global_clipnorm=clipnorm,
        weight_decay=weight_decay,
    )
    optimizer.exclude_from_weight_decay(var_names=WEIGHT_DECAY_EXCLUDED)
    return optimizer


OPTIMIZERS = {"adamw": adamw, "lamb": lamb}


def make_optimizer(name: str, learning_rate: float, warmup_steps: int, total_steps: int):
    """An optimizer by config name ("adamw" or "lamb")."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.") from None
    return factory(learning_rate, warmup_steps, total_steps)


class FailOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops a run whose loss becomes NaN or infinite with an error saying at which step and
    what to try (Keras' TerminateOnNaN only stops, and the run would exit 0 with a broken model)."""

    def __init__(self, learning_rate_setting: str, start_step: int = 0):
        super().__init__()
        self._setting, self._step = learning_rate_setting, start_step

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"The training loss became {loss} at step {self._step}. Lower the learning rate "
                f"({self._setting}), check the data for empty or extreme examples, or turn mixed precision "
                "off; nothing of this run is exported.")
