"""ServingPusher: TFX's Pusher (same spec and arguments) with the serving checks of
executor.py. Use it where a TF Serving instance watches the push destination."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from tfx_bert_app.components.serving_pusher import executor


class ServingPusher(tfx.components.Pusher):
    """Pusher that checks op compatibility and loadability, writes warm-up requests and push
    metadata, and swaps versions in atomically. ``custom_config``: keep_versions,
    warmup_texts, model_name.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
