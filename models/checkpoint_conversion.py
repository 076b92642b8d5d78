"""Published BERT checkpoints -> this project's encoder directory (a keras-hub preset + vocab).

Four sources, one entry point (``convert_checkpoint``; ``detect_format`` names the source):

- **google-research TF1** (``bert_config.json``, ``vocab.txt``, ``bert_model.ckpt.*``): variable
  names mapped by hand onto keras-hub ``BertBackbone`` weights (attention kernels reshaped from
  ``[hidden, hidden]`` to ``[hidden, heads, head_dim]``). The MLM/NSP heads are dropped.
- **Hugging Face** (``config.json`` with ``model_type: bert``, ``model.safetensors`` or
  ``pytorch_model.bin``, sharded or not, ``vocab.txt``, ``tokenizer_config.json``): the weight
  mapping is keras-hub's own transformers converter (``convert_bert.convert_weights``); written
  here: reading ``.bin`` files without PyTorch, the checkpoint's GELU and LayerNorm epsilon
  (keras-hub's converter keeps BertBackbone's tanh GELU), segment types, casing from the
  tokenizer configuration, and the errors.
- **sentence-transformers** (``modules.json``): its Transformer module as above, plus its pooling
  and normalisation kept in ``sentence_embedding.json`` (read by the embedding export).
- **keras-hub preset**: already an encoder directory; checked, not converted.
"""
from __future__ import annotations

import collections
import json
import os
import pickle
import zipfile

import numpy as np
import tensorflow as tf

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert import checkpoint_info, tokenization


def checkpoint_prefix(checkpoint_dir: str) -> str:
    prefix = tf.train.latest_checkpoint(checkpoint_dir)
    if prefix:
        return prefix
    candidates = tf.io.gfile.glob(os.path.join(checkpoint_dir, "*.index"))
    if not candidates:
        raise FileNotFoundError(f"No TF checkpoint (*.index) in {checkpoint_dir}.")
    return candidates[0][: -len(".index")]


def _weight_map(num_layers: int, hidden: int, heads: int) -> dict:
    """keras-hub weight path -> (TF1 variable name, reshape target or None)."""
    head_dim = hidden // heads
    mapping = {
        "token_embedding/embeddings": ("bert/embeddings/word_embeddings", None),
        "position_embedding/embeddings": ("bert/embeddings/position_embeddings", None),
        "segment_embedding/embeddings": ("bert/embeddings/token_type_embeddings", None),
        "embeddings_layer_norm/gamma": ("bert/embeddings/LayerNorm/gamma", None),
        "embeddings_layer_norm/beta": ("bert/embeddings/LayerNorm/beta", None),
        "pooled_dense/kernel": ("bert/pooler/dense/kernel", None),
        "pooled_dense/bias": ("bert/pooler/dense/bias", None),
    }
    for i in range(num_layers):
        ours, theirs = f"transformer_layer_{i}", f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            mapping[f"{ours}/self_attention_layer/{part}/kernel"] = (
                f"{theirs}/attention/self/{part}/kernel", (hidden, heads, head_dim))
            mapping[f"{ours}/self_attention_layer/{part}/bias"] = (
                f"{theirs}/attention/self/{part}/bias", (heads, head_dim))
        mapping.update({
            f"{ours}/self_attention_layer/attention_output/kernel": (
                f"{theirs}/attention/output/dense/kernel", (heads, head_dim, hidden)),
            f"{ours}/self_attention_layer/attention_output/bias": (f"{theirs}/attention/output/dense/bias", None),
            f"{ours}/self_attention_layer_norm/gamma": (f"{theirs}/attention/output/LayerNorm/gamma", None),
            f"{ours}/self_attention_layer_norm/beta": (f"{theirs}/attention/output/LayerNorm/beta", None),
            f"{ours}/feedforward_intermediate_dense/kernel": (f"{theirs}/intermediate/dense/kernel", None),
            f"{ours}/feedforward_intermediate_dense/bias": (f"{theirs}/intermediate/dense/bias", None),
            f"{ours}/feedforward_output_dense/kernel": (f"{theirs}/output/dense/kernel", None),
            f"{ours}/feedforward_output_dense/bias": (f"{theirs}/output/dense/bias", None),
            f"{ours}/feedforward_layer_norm/gamma": (f"{theirs}/output/LayerNorm/gamma", None),
            f"{ours}/feedforward_layer_norm/beta": (f"{theirs}/output/LayerNorm/beta", None),
        })
    return mapping


def backbone_from_tf1_checkpoint(checkpoint_dir: str):
    """Builds a keras-hub BertBackbone holding a google-research TF1 checkpoint's weights."""
    config_path = os.path.join(checkpoint_dir, "bert_config.json")
    if not tf.io.gfile.exists(config_path):
        raise FileNotFoundError(f"{config_path} is missing: not a google-research BERT directory.")
    with tf.io.gfile.GFile(config_path) as f:
        config = json.load(f)
    hidden, heads, layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    backbone = _backbone(_tf1_activation(config), config_path)
    reader = tf.train.load_checkpoint(checkpoint_prefix(checkpoint_dir))
    available = reader.get_variable_to_shape_map()
    weights = {w.path: w for w in backbone.weights}
    mapping = _weight_map(layers, hidden, heads)
    missing = sorted(name for name, _ in mapping.values() if name not in available)
    if missing:
        raise ValueError(f"Checkpoint in {checkpoint_dir} lacks {len(missing)} BERT variables, e.g. {missing[:3]}.")
    unmapped = sorted(set(weights) - set(mapping))
    if unmapped:
        raise ValueError(f"No checkpoint variable for backbone weights {unmapped}.")
    for path, (name, shape) in mapping.items():
        value = reader.get_tensor(name)
        weights[path].assign(np.reshape(value, shape) if shape else value)
    return backbone


def _backbone(config: dict, config_path: str):
    """An untrained backbone of a checkpoint's configuration (BERT's config.json keys), computing
    its own activation (google-research's "gelu" is the tanh form, Hugging Face's the erf one)."""
    act = config.get("hidden_act", "gelu")
    if act not in encoder_lib.GELU_EXACT:
        raise ValueError(f"{config_path}: hidden_act {act!r} is not supported; BERT encoders here compute "
                         f"one of {sorted(encoder_lib.GELU_EXACT)}.")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{config_path}: position_embedding_type {config['position_embedding_type']!r} is not "
                         "supported (only absolute, as in BERT).")
    try:
        return encoder_lib.build_backbone(
            hidden_act=act, layer_norm_epsilon=float(config.get("layer_norm_eps", 1e-12)),
            vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"], hidden_dim=config["hidden_size"],
            intermediate_dim=config["intermediate_size"], dropout=config.get("hidden_dropout_prob", 0.1),
            max_sequence_length=config.get("max_position_embeddings", 512),
            num_segments=config.get("type_vocab_size", 2))
    except KeyError as e:
        raise ValueError(f"{config_path} lacks {e.args[0]!r}: not a BERT configuration.") from None


def _tf1_activation(config: dict) -> dict:
    # google-research's modeling.py computes "gelu" as the tanh approximation.
    return {**config, "hidden_act": "gelu_new" if config.get("hidden_act", "gelu") == "gelu" else config["hidden_act"]}


# --- Hugging Face and sentence-transformers -------------------------------------------------

_TORCH_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                 "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
                 "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def read_torch_bin(path: str) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``torch.save`` zip file (``pytorch_model.bin``), read with numpy.

    Only tensors, storages and dicts are unpickled: any other class in the pickle is refused,
    so a checkpoint cannot run code here (the reason Hugging Face moved to safetensors).
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a zip-format PyTorch file (torch >= 1.6); re-save it with a recent "
                         "torch, or as model.safetensors.") from None
    (pickle_name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")] or [None]
    if pickle_name is None:
        raise ValueError(f"{path} holds no data.pkl: not a PyTorch checkpoint.")
    prefix = pickle_name[: -len("data.pkl")]

    def storage(pid):
        _, storage_type, key, _, _ = pid
        name = getattr(storage_type, "__name__", str(storage_type))
        if name not in _TORCH_DTYPES:
            raise ValueError(f"{path}: tensors of {name} are not supported.")
        raw = archive.read(f"{prefix}data/{key}")
        if _TORCH_DTYPES[name] == "bfloat16":  # numpy has none: the upper half of a float32
            return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        return np.frombuffer(raw, _TORCH_DTYPES[name])

    def rebuild(stored, offset, size, stride, *_):
        itemsize = stored.dtype.itemsize
        return np.lib.stride_tricks.as_strided(stored[offset:], tuple(size), [s * itemsize for s in stride]).copy()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
                return rebuild
            if module == "torch._utils" and name == "_rebuild_parameter":
                return lambda tensor, *_: tensor
            if module == "torch" and name in _TORCH_DTYPES:
                return type(name, (), {})
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"{path}: refusing to load {module}.{name} (only tensors are read)")

        def persistent_load(self, pid):
            return storage(pid)

    tensors = Unpickler(io.BytesIO(archive.read(pickle_name))).load()
    return {k: v for k, v in tensors.items() if isinstance(v, np.ndarray)}


def read_weights(directory: str) -> dict[str, np.ndarray]:
    """All tensors of a Hugging Face model directory: safetensors first, else PyTorch .bin,
    either one file or shards listed in an ``*.index.json``."""
    from safetensors.numpy import load as load_safetensors

    def read(name):
        path = os.path.join(directory, name)
        if name.endswith(".safetensors"):
            with tf.io.gfile.GFile(path, "rb") as f:
                return load_safetensors(f.read())
        return read_torch_bin(path)

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if tf.io.gfile.exists(os.path.join(directory, single)):
            return read(single)
        if tf.io.gfile.exists(os.path.join(directory, index)):
            with tf.io.gfile.GFile(os.path.join(directory, index)) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return {k: v for shard in shards for k, v in read(shard).items()}
    raise FileNotFoundError(f"{directory} holds no model.safetensors or pytorch_model.bin (nor their "
                            "sharded *.index.json): not a Hugging Face model directory.")


def find_tensor(tensors: dict[str, np.ndarray], *keys: str) -> np.ndarray | None:
    """The first of ``keys`` in a Hugging Face state dict, matched whole or as a dotted suffix
    (``bert.``, a sentence-transformers prefix); None where none is there."""
    for key in keys:
        for name, value in tensors.items():
            if name == key or name.endswith("." + key):
                return value
    return None


class _Weights:
    """What keras-hub's transformers converters read weights through (``get_tensor`` with the
    ``bert.`` prefix found by suffix, ``port_weight``), over tensors in memory. A model without
    a pooler (many sentence-transformers models) keeps the pooler's initial weights."""

    OPTIONAL = ("pooler.dense.weight", "pooler.dense.bias")

    def __init__(self, tensors: dict[str, np.ndarray], source: str):
        self.tensors, self.source, self.skipped = tensors, source, []

    def get_tensor(self, key: str) -> np.ndarray:
        value = find_tensor(self.tensors, key)
        if value is None:
            raise KeyError(f"{self.source} has no weight {key!r}")
        return value

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        try:
            value = self.get_tensor(hf_weight_key)
        except KeyError:
            if hf_weight_key in self.OPTIONAL:
                self.skipped.append(hf_weight_key)
                return
            raise ValueError(f"{self.source} lacks the BERT weight {hf_weight_key!r}.") from None
        if hook_fn:
            value = hook_fn(value, list(keras_variable.shape))
        if tuple(value.shape) != tuple(keras_variable.shape):
            raise ValueError(f"{self.source}: {hf_weight_key} has shape {list(value.shape)}, the configuration "
                             f"implies {list(keras_variable.shape)}.")
        keras_variable.assign(value.astype("float32"))


def _read_json(path: str) -> dict:
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def backbone_from_huggingface(directory: str):
    """A backbone holding a Hugging Face BERT directory's weights (keras-hub's weight mapping)."""
    from keras_hub.src.utils.transformers import convert_bert

    config_path = os.path.join(directory, "config.json")
    config = _read_json(config_path)
    if config.get("model_type", "bert") != "bert":
        raise ValueError(f"{config_path}: model_type {config['model_type']!r} is not BERT; this project "
                         "imports BERT-architecture models (BERT, multilingual BERT, BERT-style MiniLM).")
    backbone = _backbone(config, config_path)
    weights = _Weights(read_weights(directory), directory)
    convert_bert.convert_weights(backbone, weights, config)
    if weights.skipped:
        print(f"  [convert] {directory} has no pooler: pooled_output is untrained (sentence embeddings pool "
              "the token states instead)", flush=True)
    return backbone


def _hf_lower_case(directory: str, casing: str) -> bool:
    """Casing from the tokenizer's own configuration; ``casing`` (uncased/cased) overrides it."""
    if casing != "auto":
        return casing == "uncased"
    path = os.path.join(directory, "tokenizer_config.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing, so the checkpoint's casing is unknown: pass --casing "
                                "uncased|cased (convert-checkpoint) or set finetune.encoder_casing.")
    config = _read_json(path)
    lower = bool(config.get("do_lower_case", True))  # BertTokenizer's default
    if config.get("strip_accents") not in (None, lower):
        raise ValueError(f"{path}: strip_accents {config['strip_accents']} with do_lower_case {lower} is not "
                         "supported (BERT strips accents exactly when it lower-cases).")
    if config.get("tokenize_chinese_chars") is False:
        raise ValueError(f"{path}: tokenize_chinese_chars false is not supported (BERT splits CJK characters).")
    return lower


def sentence_embedding_config(directory: str) -> tuple[str, dict]:
    """(the Transformer module's directory, {pooling, normalize, max_seq_length}) of a
    sentence-transformers model, from ``modules.json`` and its Pooling module's config (old
    ``pooling_mode_*_tokens`` flags or the newer ``pooling_mode`` name)."""
    modules = _read_json(os.path.join(directory, "modules.json"))
    by_kind = {kind: m for m in modules for kind in ("Transformer", "Pooling", "Normalize")
               if kind in m.get("type", "")}
    if "Transformer" not in by_kind:
        raise ValueError(f"{directory}/modules.json has no Transformer module.")
    settings = {"pooling": "cls", "normalize": "Normalize" in by_kind, "max_seq_length": 0}
    if "Pooling" in by_kind:
        path = os.path.join(directory, by_kind["Pooling"]["path"], "config.json")
        pooling = _read_json(path)
        mode = pooling.get("pooling_mode") or next(
            (m for m in ("cls", "max", "mean") if pooling.get(f"pooling_mode_{m}_token" if m == "cls"
                                                              else f"pooling_mode_{m}_tokens")), None)
        if mode not in ("mean", "cls", "max"):
            raise ValueError(f"{path}: pooling {mode or pooling} is not supported (mean, cls or max).")
        settings["pooling"] = mode
    transformer_dir = os.path.join(directory, by_kind["Transformer"]["path"]).rstrip("/")
    settings["max_seq_length"] = _max_seq_length(transformer_dir, directory)
    return transformer_dir, settings


def _max_seq_length(transformer_dir: str, directory: str) -> int:
    """The length the model was used with: ``sentence_bert_config.json`` (sentence-transformers
    < 6), else the tokenizer's ``model_max_length`` (where 6 keeps it); 0: not said."""
    for candidate in (transformer_dir, directory):
        path = os.path.join(candidate, "sentence_bert_config.json")
        if tf.io.gfile.exists(path) and _read_json(path).get("max_seq_length"):
            return int(_read_json(path)["max_seq_length"])
    path = os.path.join(transformer_dir, "tokenizer_config.json")
    length = _read_json(path).get("model_max_length", 0) if tf.io.gfile.exists(path) else 0
    return int(length) if 0 < length < 100_000 else 0


HUB_SCHEMES = checkpoint_info.HUB_SCHEMES
# The files a checkpoint of each supported format may need, fetched one by one from a hub (each
# is optional but config.json: a format's detection then says what is missing).
HUB_FILES = ("config.json", "model.weights.h5", "tokenizer.json", "preprocessor.json", "metadata.json",
             "assets/tokenizer/vocabulary.txt", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
             "model.safetensors", "pytorch_model.bin", "modules.json", "sentence_bert_config.json",
             "config_sentence_transformers.json", "1_Pooling/config.json")


def is_hub_preset(uri: str) -> bool:
    """A keras-hub preset name (``bert_base_en_uncased``) or a hub handle (``kaggle://``,
    ``hf://``, ``modelscope://``), as ``from_preset`` takes them; not a path."""
    if uri.startswith(HUB_SCHEMES):
        return True
    if "/" in uri or os.sep in uri or tf.io.gfile.exists(uri):
        return False
    import keras_hub

    return uri in keras_hub.models.BertBackbone.presets


def download_hub_preset(uri: str, setting: str = "finetune.encoder_uri") -> str:
    """The local directory of a hub preset's files (keras-hub's own download and cache: Kaggle,
    Hugging Face or ModelScope); an error naming the preset, ``setting`` and what to do where it
    cannot be reached."""
    return checkpoint_info.fetch_from_hub(uri, HUB_FILES, setting)


def detect_format(path: str) -> str:
    """``tf1``, ``huggingface``, ``sentence-transformers`` or ``keras-hub`` for a checkpoint
    directory; an error naming what was expected otherwise."""
    def has(name):
        return tf.io.gfile.exists(os.path.join(path, name))

    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{path} is not a directory: an encoder is a checkpoint directory.")
    if has("modules.json"):
        return "sentence-transformers"
    if has("bert_config.json"):
        return "tf1"
    if has("config.json"):
        config = _read_json(os.path.join(path, "config.json"))
        if "registered_name" in config or "class_name" in config:
            return "keras-hub"
        if "model_type" in config or "hidden_size" in config:
            return "huggingface"
    raise ValueError(f"{path} is not a BERT checkpoint: expected a keras-hub preset (config.json naming a "
                     "keras-hub class), a Hugging Face directory (config.json, model.safetensors or "
                     "pytorch_model.bin), a sentence-transformers directory (modules.json) or a google-research "
                     "TF1 directory (bert_config.json, bert_model.ckpt.*).")


def convert_checkpoint(source: str, output_dir: str, casing: str = "auto", source_format: str = "auto") -> str:
    """Writes an encoder directory from any supported checkpoint directory; returns it.

    ``casing``: ``auto`` (the checkpoint's tokenizer configuration says), ``uncased`` or
    ``cased``. A keras-hub preset is checked and returned as it is.
    """
    kind = detect_format(source) if source_format == "auto" else source_format
    if kind == "keras-hub":
        encoder_lib.check_encoder_dir(source)
        return source
    sentence = None
    model_dir = source
    if kind == "sentence-transformers":
        model_dir, sentence = sentence_embedding_config(source)
    if kind == "tf1":
        backbone = backbone_from_tf1_checkpoint(source)
    else:
        backbone = backbone_from_huggingface(model_dir)
    lower_case = _hf_lower_case(model_dir, casing)
    _save(output_dir, backbone, _read_vocab(model_dir), lower_case)
    if sentence is not None:
        with tf.io.gfile.GFile(os.path.join(output_dir, encoder_lib.SENTENCE_EMBEDDING_FILE), "w") as f:
            f.write(json.dumps({**sentence, "source": source}, indent=2))
    return output_dir


def _read_vocab(model_dir: str) -> list[str]:
    """The WordPiece vocabulary: ``vocab.txt``, else a fast tokenizer's ``tokenizer.json``
    (what newer transformers save alone)."""
    vocab_file = os.path.join(model_dir, "vocab.txt")
    if tf.io.gfile.exists(vocab_file):
        return tokenization.read_vocab(vocab_file)
    fast = os.path.join(model_dir, "tokenizer.json")
    if tf.io.gfile.exists(fast):
        model = _read_json(fast).get("model", {})
        if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix", "##") != "##":
            raise ValueError(f"{fast}: a {model.get('type')} tokenizer, not BERT's WordPiece with '##' pieces.")
        by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError(f"{fast}: vocabulary ids are not 0..{len(by_id) - 1}.")
        return [token for token, _ in by_id]
    raise FileNotFoundError(f"{vocab_file} (or tokenizer.json) is missing: a BERT checkpoint carries its "
                            "WordPiece vocabulary.")


def _save(output_dir: str, backbone, vocab: list[str], lower_case: bool) -> None:
    staging = os.path.join(output_dir, ".vocab")
    tokenization.write_vocab_dir(staging, vocab, tokenization.TokenizerConfig(lower_case=lower_case))
    encoder_lib.save_encoder(output_dir, backbone, staging)
    tf.io.gfile.rmtree(staging)


def convert_tf1_checkpoint(checkpoint_dir: str, output_dir: str, lower_case: bool | None = None) -> str:
    """Writes an encoder directory (keras-hub preset + vocabulary) from a TF1 BERT directory.

    ``lower_case`` None: the directory's ``tokenizer_config.json`` says (published TF1 BERTs
    have none: then it must be given)."""
    casing = "auto" if lower_case is None else ("uncased" if lower_case else "cased")
    return convert_checkpoint(checkpoint_dir, output_dir, casing, source_format="tf1")
