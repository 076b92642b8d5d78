"""What a BERT checkpoint directory declares, read from its configuration files alone (no
weights): its architecture, vocabulary size and casing. The configuration reads it once, before
anything runs, to fill ``pretrain.init_from``'s settings and refuse ones that contradict it.

Formats: Hugging Face (``config.json`` with BERT's keys), sentence-transformers (its Transformer
module's), google-research TF1 (``bert_config.json``), a keras-hub preset (``config.json``
naming a keras-hub class; an earlier pretraining run's model is one).
"""
from __future__ import annotations

import dataclasses
import json
import os


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's architecture and tokenizer facts; ``lower_case`` None: it does not say."""

    config_file: str
    num_layers: int
    hidden_dim: int
    num_heads: int
    intermediate_dim: int
    max_positions: int
    vocab_size: int
    lower_case: bool | None

    def shape(self) -> str:
        return (f"{self.num_layers} layers x {self.hidden_dim} wide, {self.num_heads} heads, "
                f"intermediate {self.intermediate_dim}")


def _read(path: str) -> dict | None:
    try:
        if "://" in path:
            import tensorflow as tf

            if not tf.io.gfile.exists(path):
                return None
            with tf.io.gfile.GFile(path) as f:
                return json.load(f)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def _transformer_dir(directory: str) -> str:
    """A sentence-transformers model's Transformer module directory (else ``directory``)."""
    modules = _read(os.path.join(directory, "modules.json"))
    for module in modules or []:
        if "Transformer" in module.get("type", ""):
            return os.path.join(directory, module.get("path", "")).rstrip("/")
    return directory


def _casing(directory: str) -> bool | None:
    """Lower-casing as the checkpoint's tokenizer configuration says: Hugging Face's
    ``tokenizer_config.json``, this project's ``vocab/tokenizer_config.json``, keras-hub's
    ``tokenizer.json``; None where none does (google-research TF1 directories)."""
    hf = _read(os.path.join(directory, "tokenizer_config.json"))
    if hf is not None:
        return bool(hf.get("do_lower_case", True))
    ours = _read(os.path.join(directory, "vocab", "tokenizer_config.json"))
    if ours is not None and "lower_case" in ours:
        return bool(ours["lower_case"])
    hub = _read(os.path.join(directory, "tokenizer.json"))
    if hub is not None and "lowercase" in (hub.get("config") or {}):
        return bool(hub["config"]["lowercase"])
    return None


HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")
_HUB_CONFIG_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "modules.json")


def fetch_from_hub(handle: str, files=_HUB_CONFIG_FILES, setting: str = "pretrain.init_from") -> str:
    """The local directory of a hub handle's ``files`` (keras-hub's own download and cache, as
    ``from_preset`` does: Kaggle, Hugging Face or ModelScope; each optional but config.json); an
    error naming the handle, ``setting`` and what to do where it cannot be fetched."""
    from keras_hub.src.utils import preset_utils

    try:
        directory = os.path.dirname(preset_utils.get_file(handle, "config.json"))
    except Exception as e:  # no network, no access, not a preset: keras-hub raises many kinds
        reason = " ".join(str(e).split())[:300]
        raise ValueError(
            f"{setting} {handle!r} is a keras-hub preset or hub handle, and its config.json could not be fetched "
            f"({type(e).__name__}: {reason}). Where this machine cannot reach the hub, download the checkpoint "
            "elsewhere (e.g. keras_hub.models.BertBackbone.from_preset(...) then save_to_preset(DIR), or the Hugging "
            f"Face repository's files) and set {setting} to that directory.") from None
    for name in files:
        if name != "config.json":
            try:
                preset_utils.get_file(handle, name)
            except Exception:  # a file this format does not have
                continue
    return directory


def _is_hub(uri: str) -> bool:
    """A hub handle, or a keras-hub BERT preset name (``bert_base_en_uncased``); not a path."""
    if uri.startswith(HUB_SCHEMES):
        return True
    if "/" in uri or os.sep in uri or os.path.exists(uri):
        return False
    import keras_hub

    return uri in keras_hub.models.BertBackbone.presets


def read_checkpoint_info(directory: str) -> CheckpointInfo:
    """The facts of the checkpoint in ``directory`` (or a keras-hub preset name / hub handle);
    an error naming the file where there is no BERT configuration to read."""
    directory = fetch_from_hub(directory) if _is_hub(directory) else directory.rstrip("/")
    serving = os.path.join(directory, "Format-Serving")  # an earlier run's Model artifact, as MLMD names it
    if _read(os.path.join(directory, "config.json")) is None and _read(os.path.join(serving, "config.json")):
        directory = serving
    model_dir = _transformer_dir(directory)
    for name in ("config.json", "bert_config.json"):
        path = os.path.join(model_dir, name)
        config = _read(path)
        if config is None:
            continue
        try:
            if "hidden_size" in config:  # Hugging Face and google-research BERT configurations
                return CheckpointInfo(path, int(config["num_hidden_layers"]), int(config["hidden_size"]),
                                      int(config["num_attention_heads"]), int(config["intermediate_size"]),
                                      int(config.get("max_position_embeddings", 512)), int(config["vocab_size"]),
                                      _casing(model_dir))
            hub = config.get("config") or {}
            if "hidden_dim" in hub:  # a keras-hub BertBackbone preset
                return CheckpointInfo(path, int(hub["num_layers"]), int(hub["hidden_dim"]), int(hub["num_heads"]),
                                      int(hub["intermediate_dim"]), int(hub.get("max_sequence_length", 512)),
                                      int(hub["vocabulary_size"]), _casing(model_dir))
        except KeyError as e:
            raise ValueError(f"{path} lacks {e.args[0]!r}: not a BERT configuration.") from None
        raise ValueError(f"{path} declares no BERT architecture (hidden_size, or a keras-hub backbone's hidden_dim).")
    raise FileNotFoundError(
        f"{directory} holds no BERT configuration (config.json, bert_config.json, or a sentence-transformers "
        "modules.json): pretrain.init_from takes a Hugging Face, sentence-transformers, google-research TF1 or "
        "keras-hub BERT directory, or an earlier pretraining run's model.")
