"""tfx-bert: a BERT pipeline on TFX, Keras (keras-hub) and tensorflow-text.

Dependency *ranges* live here (this file is also what Beam's ``--setup_file`` ships to remote
workers); the exact versions that are tested live in ``uv.lock``.
"""
import setuptools

# Ranges, not pins: the lock file pins. Why each bound exists:
INSTALL_REQUIRES = [
    "tfx[kfp]==1.16.0",  # newest TFX whose compiled deps (MLMD, TFDV) are published
    "tensorflow>=2.16.1,<2.17",  # the TF that TFX 1.16 supports
    "tensorflow-text>=2.16,<2.17",  # must match TF's minor version (custom ops ABI)
    "tensorflow-serving-api>=2.16,<2.17",
    "keras>=3.3,<4",  # Keras 3 on the TF backend
    "keras-hub>=0.21,<0.32",  # BertBackbone and friends
    "safetensors>=0.4",  # Hugging Face checkpoints (keras-hub's transformers loader reads them with it)
    "dill",  # tfx-bsl imports it; recent Beam no longer depends on it
    "pip",  # TFX packages user modules with pip when module_file is used
    "pyyaml>=6",
    "grpcio>=1.48",
    "crcmod",  # fast CRC for Beam's TFRecord IO (else a slow pure-Python fallback and a warning)
    # Vector store: Milvus Lite embedded (a local file), the same client API for a Milvus cluster.
    # pymilvus 3.x needs protobuf >= 5.27, which TF 2.16 / TFX 1.16 do not allow.
    "pymilvus>=2.5,<2.6",
    "milvus-lite>=2.5,<2.6; sys_platform == 'linux' or sys_platform == 'darwin'",
    "setuptools<81",  # milvus-lite 2.5 imports pkg_resources, which setuptools 81 removed
    # Lexical retrieval (BM25): scipy sparse matrices, no JVM or server; an index saves to a folder.
    "bm25s>=0.2.6,<0.3",
]

TEST_REQUIRES = [
    "pytest>=8,<9",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100,<7",  # property-based fuzzing of the serving APIs (tests/test_serving_fuzz.py)
    "tokenizers>=0.20",  # reference WordPiece (google-research semantics) for parity tests
    "seqeval>=1.2.2",  # reference entity-level NER metrics (conlleval definition) for tests
    "pytrec-eval-terrier>=0.5.6",  # trec_eval's own code: reference ranking metrics (Recall@k, MRR, nDCG) for tests
]

APP = "tfx_bert_app"
APP_FOLDERS = ("pipeline", "components", "models", "kubeflow")

setuptools.setup(
    name="tfx-bert",
    version="0.1.0",
    description="Production BERT pipeline on TFX, keras-hub and tensorflow-text",
    python_requires=">=3.11,<3.12",
    # The repository's top-level folders pipeline/, components/, models/ and kubeflow/ install as
    # tfx_bert_app.<folder>: no installed top-level name clashes with another distribution (PyPI's
    # Kubeflow packages install into a kubeflow.* namespace; "models", "pipeline" and
    # "components" are common names).
    packages=setuptools.find_packages(include=["tfx_bert", "tfx_bert.*"]) + [
        f"{APP}.{package}" for folder in APP_FOLDERS
        for package in [folder] + [f"{folder}.{p}" for p in setuptools.find_packages(where=folder)]],
    package_dir={f"{APP}.{folder}": folder for folder in APP_FOLDERS},
    package_data={"tfx_bert": ["configs/*.yaml", "serving/*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": ["tfx-bert=tfx_bert.cli:main"]},
)
