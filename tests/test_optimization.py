"""models.optimization: the warm-up then linear-decay learning-rate schedule."""
import numpy as np

from tfx_bert_app.models import optimization


def test_warmup_then_linear_decay():
    schedule = optimization.WarmupLinearDecay(1.0, warmup_steps=10, total_steps=110)
    values = [float(schedule(s)) for s in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_a_non_finite_loss_fails_the_run_naming_the_step_and_the_setting():
    import keras
    import pytest

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1.0]] * 4 + [[np.nan]] * 4, "float32")
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 3\. Lower the learning rate "
                                                 r"\(finetune.learning_rate\)"):
        model.fit(x, np.ones((8, 1), "float32"), batch_size=2, shuffle=False, verbose=0,
                  callbacks=[optimization.FailOnNonFiniteLoss("finetune.learning_rate")])
