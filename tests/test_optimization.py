"""models.optimization: the warm-up then linear-decay learning-rate schedule."""
import numpy as np

from tfx_bert_app.models import optimization


def test_warmup_then_linear_decay():
    schedule = optimization.WarmupLinearDecay(1.0, warmup_steps=10, total_steps=110)
    values = [float(schedule(s)) for s in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)
