"""tfx-bert's library layer.

``tfx_bert.Vocabulary`` (and the other artifact types of ``tfx_bert/artifacts.py``) resolve here
because their schema titles are their import paths on Kubeflow (see artifacts.py); they load on
first use, so ``import tfx_bert`` stays light."""


_ARTIFACT_TYPES = ("Vocabulary", "StudentBlessing", "DataGateResult", "VectorIndex")  # artifacts.NAMES


def __getattr__(name):
    if name in _ARTIFACT_TYPES:
        import importlib

        return getattr(importlib.import_module("tfx_bert.artifacts"), name)
    raise AttributeError(f"module 'tfx_bert' has no attribute {name!r}")
