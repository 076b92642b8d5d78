"""Optimizer and learning-rate schedule shared by pretraining and fine-tuning."""
from __future__ import annotations

import math

import keras
import tensorflow as tf

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


@keras.saving.register_keras_serializable(package="tfx_bert")
class FusedAdamW(keras.optimizers.AdamW):
    """Keras's AdamW with the same arithmetic in an eighth of the ops: one
    ``ResourceApplyAdam`` kernel per variable (TensorFlow's fused Adam: the moment updates and
    the step in one pass, the same formulas as ``keras.optimizers.Adam.update_step``), the
    decoupled weight decay as one multiply-and-subtract, and the learning rate and bias
    corrections computed once per step instead of once per variable.

    Why: on a CPU a small BERT's step is a few thousand small ops, each with the executor's
    fixed cost, and Keras's AdamW was half of them (BERT-tiny: 1,474 of 3,077 ops per step,
    about 32 per variable, ``benchmarks/step_profile.py``; this one takes 192). Clipping, loss scaling, gradient
    accumulation, EMA and distribution strategies stay Keras's; only the per-variable update
    changes. TensorFlow backend only; ``amsgrad`` is not offered.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "adamw")  # the variables' names, as keras.optimizers.AdamW's
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdamW does not implement amsgrad; use keras.optimizers.AdamW for it.")
        if keras.backend.backend() != "tensorflow":
            raise ValueError(f"FusedAdamW runs TensorFlow's fused kernel; the Keras backend is "
                             f"{keras.backend.backend()!r}. Use keras.optimizers.AdamW there.")

    def _apply_weight_decay(self, variables):
        """The decay is applied in ``update_step``, with the step's learning rate computed once."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras computes these per variable (and its TF weight decay re-evaluates the schedule
        # per variable); once per step is the same values.
        lr = tf.cast(learning_rate, tf.float32)
        step = tf.cast(self.iterations + 1, tf.float32)
        coefficients = (lr, tf.pow(tf.cast(self.beta_1, tf.float32), step),
                        tf.pow(tf.cast(self.beta_2, tf.float32), step), lr * tf.cast(self.weight_decay, tf.float32))
        super()._backend_update_step(grads, trainable_variables, coefficients)

    def update_step(self, gradient, variable, learning_rate):
        """One variable's decoupled decay and Adam step; ``learning_rate`` carries the step's
        (learning rate, beta_1 ** t, beta_2 ** t, learning rate x weight decay)."""
        lr, beta_1_power, beta_2_power, decay = (tf.cast(c, variable.dtype) for c in learning_rate)
        if self._use_weight_decay(variable):
            variable.assign_sub(variable * decay)
        index = self._get_variable_index(variable)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)  # IndexedSlices -> dense, as Keras's
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=beta_1_power, beta2_power=beta_2_power, lr=lr,
            beta1=tf.cast(self.beta_1, variable.dtype), beta2=tf.cast(self.beta_2, variable.dtype),
            epsilon=tf.cast(self.epsilon, variable.dtype), grad=gradient, use_locking=False)


def _handle(variable):
    """The resource handle of a Keras or tf.Variable (a distributed one's local copy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def adamw(learning_rate: float, warmup_steps: int, total_steps: int,
          weight_decay: float = 0.01, clipnorm: float = 1.0) -> keras.optimizers.Optimizer:
    """AdamW (``FusedAdamW``) with BERT's schedule, decay exclusions and global-norm gradient clipping."""
    optimizer = FusedAdamW(
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
