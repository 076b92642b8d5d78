"""The typed configuration that flows from the CLI / runners into the pipeline factories.

One ``ProjectConfig`` holds everything; it is filled from defaults, then a YAML file, then
``section.key=value`` overrides (``--set pretrain.train_steps=200``). Nothing else reads flags or
environment variables.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from tfx_bert import registry


@dataclasses.dataclass
class PretrainConfig:
    """The pretraining pipeline: corpus -> vocabulary -> instances -> MLM+NSP Trainer."""

    pipeline_name: str = "tfx-bert-pretrain"
    corpus_pattern: str = ""  # glob of raw corpus files; empty -> the embedded demo corpus
    input_format: str = "bert_raw"  # bert_raw, jsonl, csv, tsv or tfrecord
    text_field: str = "text"  # jsonl/csv/tfrecord: the field holding the text
    id_field: str = ""  # jsonl/csv/tfrecord: a field holding a document id (else file:line)
    strict: bool = False  # fail on the first bad record instead of skipping and counting
    per_line: bool = False  # one example per line instead of per document
    max_line_chars: int = 100_000
    eval_percent: int = 10
    vocab_size: int = 30522
    lower_case: bool = True
    num_unused_tokens: int = 0
    vocab_path: str = ""  # an existing vocab.txt to use instead of learning one
    model_size: str = "tiny"
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    masking: str = "dynamic"  # dynamic (per batch, in tf.data) | static (dupe_factor copies)
    dupe_factor: int = 10  # static masking: differently masked copies of the corpus
    whole_word_masking: bool = False  # static masking only
    short_seq_prob: float = 0.1
    nsp_shards: int = 4
    seed: int = 12345
    # Same inputs and hardware -> the same weights (tf.config.experimental.enable_op_determinism;
    # needs masking=static: masks drawn by PretrainingDataGen, seeded). For CI and debugging.
    deterministic: bool = False
    batch_size: int = 32
    train_steps: int = 1000
    eval_steps: int = 50
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    optimizer: str = "adamw"  # adamw | lamb
    dropout: float = 0.1
    # auto: from resources.trainer (TPU -> tpu, replicas > 1 -> multi_worker, several GPUs ->
    # mirrored, else default); or default | mirrored | multi_worker (TF_CONFIG) | tpu.
    distribution: str = "auto"
    tpu: str = ""  # TPU name/address for distribution=tpu
    # auto: mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU; or "" | mixed_bfloat16 |
    # mixed_float16 | float32.
    mixed_precision: str = "auto"
    batch_size_per_replica: int = 0  # > 0: global batch = this x replicas (overrides batch_size)
    jit_compile: bool = False  # XLA
    checkpoint_every: int = 200  # steps; a restarted Trainer resumes from the last one
    checkpoint_dir: str = ""  # empty -> <work_dir>/checkpoints
    # Optional second phase at a longer sequence length (BERT: 90% of steps at 128, then 512),
    # warm-started from phase 1's weights. 0 turns it off.
    phase2_max_seq_length: int = 0
    phase2_train_steps: int = 0
    phase2_max_predictions_per_seq: int = 80
    enable_statistics: bool = True


@dataclasses.dataclass
class FinetuneConfig:
    """A fine-tuning pipeline: task data -> Transform -> Trainer -> Evaluator -> Pusher."""

    pipeline_name: str = "tfx-bert-sentiment"
    task: str = "sentiment"  # a key of tfx_bert/tasks.py TASKS
    data_dir: str = ""  # task data; empty -> the task's embedded demo data
    encoder_uri: str = ""  # a pretrained encoder (keras-hub preset dir); empty -> latest pretrained
    model_name: str = "sentiment"
    # Task data (TaskExampleGen): files under data_dir, their format and fields.
    input_format: str = "csv"  # glue_tsv | csv | tsv | jsonl | conll (NER) | squad (QA) | beir | msmarco_triples
    train_pattern: str = "train/*"
    eval_pattern: str = "eval/*"
    text_field: str = "text"
    text_b_field: str = ""  # sentence pairs (MRPC, QNLI, RTE, ...): the second text's field
    label_field: str = "label"
    label_names: list = dataclasses.field(default_factory=list)  # label strings in id order; empty: ints
    strict: bool = False  # fail on the first bad record instead of skipping and counting
    class_weights: list = dataclasses.field(default_factory=list)  # per class id; empty: all 1
    entity_types: list = dataclasses.field(default_factory=list)  # NER: e.g. PER, LOC, ORG, MISC
    tag_scheme: str = "iob2"  # NER data: iob1 (CoNLL-2003's files) | iob2 | bioes
    crf: bool = False  # NER: a CRF over the tag logits (Viterbi decoding in-graph) instead of softmax
    # Extractive QA (SQuAD JSON): windows over long contexts and answer decoding.
    doc_stride: int = 24  # pieces between window starts (SQuAD with 384-piece windows: 128)
    max_query_length: int = 16  # QA question / retrieval query pieces kept (SQuAD with 384-piece windows: 64)
    max_windows: int = 4  # windows per question written by Transform (training/eval); serving: all
    max_answer_length: int = 30  # pieces
    n_best_size: int = 5
    squad_v2: bool = True  # unanswerable questions: answer "" when the [CLS] score wins
    no_answer_threshold: float = 0.0  # SQuAD 2.0: no answer when null score - best span > this
    tune_no_answer_threshold: bool = True  # pick it on the eval split (SQuAD 2.0's best_exact_thresh)
    # Sentence similarity (bi-encoder): pooling and objective.
    pooling: str = "mean"  # mean | cls
    similarity_objective: str = "cosine"  # cosine (STS-B scores) | classification (NLI: [u, v, |u-v|])
    score_max: float = 5.0  # cosine: gold scores are divided by this (STS-B: 0-5)
    # Dense retrieval: after a blessed similarity model, index a corpus into the vector store.
    index_corpus: str = ""  # BEIR corpus.jsonl or MS MARCO collection.tsv; empty: no indexing
    index_corpus_format: str = "beir"  # beir | msmarco
    vector_store_uri: str = ""  # Milvus: a local file (Milvus Lite) or http(s)://host:19530; empty -> <work_dir>/vectors/milvus.db
    index_type: str = "IVF_FLAT"  # FLAT (exact) | IVF_FLAT (Milvus Lite); HNSW, IVF_PQ, ... on a cluster
    # Dense retrieval and re-ranking data (TaskExampleGen beir | msmarco_triples) and training.
    num_negatives: int = 3  # non-relevant passages per (query, passage) pair (msmarco_triples: 1)
    negative_pool: int = 32  # beir: sampled documents the lexically hardest negatives come from (0: random)
    temperature: float = 0.05  # retrieval: the contrastive softmax's temperature on cosines
    shared_towers: bool = True  # retrieval: one encoder for queries and documents, or two
    retrieval_eval_dir: str = ""  # retrieval: BEIR-layout eval set; empty -> the task data
    retrieval_eval_qrels: str = ""  # retrieval: its qrels file; empty -> eval_pattern (beir data)
    retrieval_gate_metric: str = "ndcg@10"  # retrieval: gates the blessing (>= accuracy_threshold)
    rerank_loss: str = "listwise"  # rerank: listwise (softmax over candidates) | pointwise (BCE)
    num_classes: int = 2
    max_seq_length: int = 64
    seed: int = 12345
    deterministic: bool = False  # as pretrain.deterministic
    batch_size: int = 32
    train_steps: int = 300
    eval_steps: int = 20
    learning_rate: float = 5e-4
    dropout: float = 0.1
    accuracy_threshold: float = 0.6  # blessing: the task's main metric (accuracy; NER: entity F1) at least this
    keep_versions: int = 5  # pushed versions kept under <serving_base>/<model_name>/
    warmup_texts: list = dataclasses.field(
        default_factory=lambda: ["a warm-up request .", "another warm-up request for the model ."])


@dataclasses.dataclass
class ServingConfig:
    """Where models are pushed and how the development server listens."""

    serving_base: str = ""  # empty -> <work_dir>/serving; on Kubernetes a gs:// path
    host: str = "127.0.0.1"
    grpc_port: int = 8500
    rest_port: int = 8501
    poll_seconds: float = 2.0  # how often servers look for new versions
    enable_batching: bool = False
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000  # TF Serving's CPU advice: 0 (batches grow with load), then 1-10 ms
    num_batch_threads: int = 0  # batches run at once; 0: left out of the file (tfx-bert serve: the CPU cores)
    # TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism; 0: TensorFlow
    # picks. Small models at batch 1 serve faster with intra-op 1 (benchmarks/serving_throughput.py).
    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0
    # Kubernetes (kubeflow/serving_manifests.py): TF Serving's official image over serving_base.
    image: str = "tensorflow/serving:2.16.1"
    replicas: int = 2
    namespace: str = "default"
    cpu: str = "2"
    memory: str = "4Gi"
    service_account: str = ""  # one with read access to serving_base (e.g. GKE workload identity)


@dataclasses.dataclass
class ResourceConfig:
    """Container resources of one kind of step on Kubeflow / Vertex; 0 or empty: cluster default.

    ``accelerator_type``: on Kubeflow Pipelines the resource name (``nvidia.com/gpu``); on Vertex
    AI Pipelines the accelerator (``NVIDIA_TESLA_T4``, ``NVIDIA_A100_80GB``, ``TPU_V3``, ...).
    """

    cpu: float = 0.0
    memory_gb: float = 0.0
    accelerator_type: str = ""
    accelerator_count: int = 0
    replicas: int = 1  # Trainer only: > 1 trains multi-worker (Vertex custom job, TF_CONFIG)
    machine_type: str = ""  # Vertex custom job machine for multi-worker training, e.g. a2-highgpu-1g

    @property
    def is_tpu(self) -> bool:
        return self.accelerator_type.upper().startswith("TPU")

    @property
    def gpus(self) -> int:
        return 0 if self.is_tpu or not self.accelerator_type else self.accelerator_count


@dataclasses.dataclass
class ResourcesConfig:
    """Resources per kind of step; the Trainer's also choose its tf.distribute strategy."""

    trainer: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)
    beam: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)  # Beam-based components
    default: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)  # everything else


@dataclasses.dataclass
class BeamConfig:
    """Which Beam runner the Beam-based components use; see tfx_bert/beam_options.py."""

    runner: str = "direct"  # direct | dataflow | flink | spark
    project: str = ""  # dataflow
    region: str = ""  # dataflow
    temp_location: str = ""  # dataflow: gs://bucket/tmp
    staging_location: str = ""  # dataflow; empty -> temp_location
    machine_type: str = ""  # dataflow worker machine, e.g. n1-standard-8
    max_num_workers: int = 0  # dataflow autoscaling ceiling
    sdk_container_image: str = ""  # dataflow/portable: a worker image with this package installed
    flink_master: str = ""  # flink: host:port of the JobManager
    spark_master: str = ""  # spark: spark://host:7077
    environment_type: str = ""  # portable runners: DOCKER | PROCESS | EXTERNAL | LOOPBACK
    environment_config: str = ""  # e.g. the SDK harness image for DOCKER
    parallelism: int = 0  # flink/spark default parallelism
    setup_file: str = ""  # shipped to workers; empty -> this checkout's setup.py
    extra_args: list = dataclasses.field(default_factory=list)  # appended verbatim


@dataclasses.dataclass
class KubeflowConfig:
    """Compiling for Kubeflow Pipelines v2 / Vertex AI Pipelines (kubeflow/runner.py)."""

    image: str = "tfx-bert:latest"  # the image built from kubeflow/Dockerfile
    platform: str = "kfp"  # kfp | vertex (Vertex: TPUs, multi-worker custom jobs)
    pipeline_root: str = ""  # gs://bucket/root; per run: --pipeline-root at submission
    project: str = ""  # vertex
    region: str = "us-central1"  # vertex
    image_setup_file: str = "/tfx-bert/setup.py"  # setup.py inside the image, for Beam workers
    runtime_parameters: bool = True  # data paths, step counts, model size settable per run


@dataclasses.dataclass
class ProjectConfig:
    """Everything a run needs; paths default to places under ``work_dir``."""

    work_dir: str = "work"
    beam_pipeline_args: list = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    )
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    # Derived paths ---------------------------------------------------------------------
    @property
    def pipelines_root(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "pipelines")

    @property
    def metadata_path(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "metadata.sqlite")

    @property
    def data_dir(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "data")

    @property
    def checkpoint_root(self) -> str:
        return _absolute(self.pretrain.checkpoint_dir or os.path.join(self.work_dir, "checkpoints"))

    @property
    def serving_base(self) -> str:
        return _absolute(self.serving.serving_base or os.path.join(self.work_dir, "serving"))

    def validate(self) -> "ProjectConfig":
        """Checks values that would otherwise fail deep inside TF; returns self."""
        registry.get_model_size(self.pretrain.model_size)
        checks = [
            (0 < self.pretrain.eval_percent < 100, "pretrain.eval_percent must be in 1..99"),
            (self.pretrain.vocab_size >= 100, "pretrain.vocab_size must be at least 100"),
            (8 <= self.pretrain.max_seq_length <= 512, "pretrain.max_seq_length must be 8..512"),
            (8 <= self.finetune.max_seq_length <= 512, "finetune.max_seq_length must be 8..512"),
            (0 < self.pretrain.masked_lm_prob < 1, "pretrain.masked_lm_prob must be in (0, 1)"),
            (self.pretrain.train_steps > 0, "pretrain.train_steps must be positive"),
            (self.finetune.train_steps > 0, "finetune.train_steps must be positive"),
            (self.finetune.num_classes >= 2, "finetune.num_classes must be at least 2"),
            (not self.finetune.label_names or len(self.finetune.label_names) == self.finetune.num_classes,
             "finetune.label_names must have finetune.num_classes entries"),
            (not self.finetune.class_weights or len(self.finetune.class_weights) == self.finetune.num_classes,
             "finetune.class_weights must have finetune.num_classes entries"),
            (self.pretrain.optimizer in ("adamw", "lamb"), "pretrain.optimizer must be adamw or lamb"),
            (self.pretrain.masking in ("dynamic", "static"), "pretrain.masking must be dynamic or static"),
            (not self.pretrain.phase2_max_seq_length
             or (self.pretrain.max_seq_length < self.pretrain.phase2_max_seq_length <= 512
                 and self.pretrain.phase2_train_steps > 0),
             "pretrain.phase2_max_seq_length must exceed max_seq_length (<= 512) with phase2_train_steps > 0"),
            (not self.pretrain.whole_word_masking or self.pretrain.masking == "static",
             "pretrain.whole_word_masking needs pretrain.masking=static"),
            (not self.pretrain.deterministic or self.pretrain.masking == "static",
             "pretrain.deterministic needs pretrain.masking=static (keras-hub's dynamic masker draws "
             "from stateful random ops in tf.data, whose order varies between runs)"),
            (self.pretrain.distribution in ("auto", "default", "mirrored", "multi_worker", "tpu"),
             "pretrain.distribution must be auto, default, mirrored, multi_worker or tpu"),
            (self.pretrain.mixed_precision in ("auto", "", "float32", "mixed_bfloat16", "mixed_float16"),
             "pretrain.mixed_precision must be auto, float32, mixed_bfloat16 or mixed_float16"),
            (self.pretrain.batch_size_per_replica >= 0, "pretrain.batch_size_per_replica must be >= 0"),
            (self.beam.runner in ("direct", "dataflow", "flink", "spark"),
             "beam.runner must be direct, dataflow, flink or spark"),
            (self.kubeflow.platform in ("kfp", "vertex"), "kubeflow.platform must be kfp or vertex"),
            (self.resources.trainer.replicas >= 1, "resources.trainer.replicas must be at least 1"),
            (self.resources.trainer.replicas == 1 or self.kubeflow.platform == "vertex",
             "resources.trainer.replicas > 1 needs kubeflow.platform=vertex (multi-worker custom "
             "job); on Kubernetes without Vertex see the TFJob section of the README"),
            (0 <= self.finetune.accuracy_threshold <= 1, "finetune.accuracy_threshold in [0, 1]"),
            (self.finetune.tag_scheme in ("iob1", "iob2", "bioes"), "finetune.tag_scheme must be iob1, iob2 or bioes"),
            (0 < self.finetune.max_query_length <= self.finetune.max_seq_length - 4,
             "finetune.max_query_length must be 1..max_seq_length-4 (room for [CLS], [SEP]s and context)"),
            (self.finetune.doc_stride > 0, "finetune.doc_stride must be positive"),
            (self.finetune.pooling in ("mean", "cls"), "finetune.pooling must be mean or cls"),
            (self.finetune.similarity_objective in ("cosine", "classification"),
             "finetune.similarity_objective must be cosine or classification"),
            (self.finetune.max_windows > 0, "finetune.max_windows must be positive"),
            (self.finetune.max_answer_length > 0 and self.finetune.n_best_size > 0,
             "finetune.max_answer_length and finetune.n_best_size must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid configuration: {message}.")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _absolute(path: str) -> str:
    """Local paths made absolute; URIs (gs://, s3://, hdfs://) kept as they are."""
    return path if "://" in path else os.path.abspath(path)


def _apply(obj: Any, data: dict, where: str) -> None:
    for key, value in data.items():
        if not hasattr(obj, key) or key.startswith("_"):
            known = ", ".join(f.name for f in dataclasses.fields(obj))
            raise ValueError(f"Unknown config key '{where}{key}'; known keys here: {known}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"Config key {where}{key} must be a mapping.")
            _apply(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, current, f"{where}{key}"))


def _coerce(value: Any, current: Any, name: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"Config key {name} expects true/false, got {value!r}.")
        return bool(value)
    if isinstance(current, list) and isinstance(value, str):
        return [v for v in value.split(",") if v]
    try:
        return type(current)(value) if current is not None else value
    except (TypeError, ValueError):
        raise ValueError(
            f"Config key {name} expects {type(current).__name__}, got {value!r}."
        ) from None


def parse_override(text: str) -> dict:
    """``"pretrain.train_steps=200"`` -> ``{"pretrain": {"train_steps": "200"}}``."""
    if "=" not in text:
        raise ValueError(f"Override {text!r} must look like section.key=value.")
    path, value = text.split("=", 1)
    result: dict = {}
    node = result
    parts = path.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return result


DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "demo.yaml")


def load_config(yaml_path: str | None = None, overrides: list[str] | tuple = (),
                base: ProjectConfig | None = None) -> ProjectConfig:
    """``base`` (or defaults) <- YAML file <- ``section.key=value`` overrides, validated."""
    config = base or ProjectConfig()
    if yaml_path:
        if not os.path.exists(yaml_path):
            raise FileNotFoundError(f"Config file not found: {yaml_path}")
        with open(yaml_path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"Config file {yaml_path} must hold a mapping at the top level.")
        _apply(config, data, "")
    for text in overrides:
        _apply(config, parse_override(text), "")
    return config.validate()


def demo_config(overrides: list[str] | tuple = ()) -> ProjectConfig:
    """The tiny configuration ``make demo`` and the end-to-end tests run (configs/demo.yaml)."""
    return load_config(DEMO_CONFIG, overrides)
