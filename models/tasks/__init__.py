"""The fine-tuning tasks, one class each (``tfx_bert.tasks.Task``): settings, rules, data,
gates, serving contract and decoding. Light on import (no TensorFlow): the configuration and
the client read them; each class names its model code (``models/<module>.py``) by dotted path."""
