# tfx-bert: `make demo` runs the whole job on the embedded data; `make test` runs every test.
# Both set themselves up first (idempotent: a second run only checks the environment).
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON := $(PYTHON)
PYTEST_ARGS ?=

.PHONY: setup check-python demo test test-fast test-flink test-airflow bench image clean published-fixtures flink-setup flink-up flink-down airflow-setup

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "tfx-bert needs Python 3.11 ('$(PYTHON)' is missing or another version): TFX 1.16 and TF 2.16 have no wheels for other versions here. Install 3.11 or run: make PYTHON=/path/to/python3.11 ..."; exit 1; }

$(UV): | check-python
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Installs exactly what uv.lock pins (--frozen: never re-resolves), this package editable.
# --compile-bytecode writes every .pyc once at install: with PYTHONDONTWRITEBYTECODE set (as on
# these machines) each new Python process would otherwise recompile TensorFlow's and TFX's
# sources, 12 s instead of 4 s for `import tensorflow`, and the tests start dozens of them.
setup: check-python $(UV)
	@$(UV) sync --frozen --extra test --quiet --compile-bytecode
	@echo "environment ready: $(VENV) (from uv.lock)"

demo: setup
	$(VENV)/bin/tfx-bert demo

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Beam on a local Flink cluster (tfx_bert/flink_cluster.py): the jars of flink/pom.xml from Maven
# Central, cached in ~/.m2; their classpath in .flink/classpath.txt. Without Java or Maven it says so
# and stops; nothing else needs them.
# Last on the classpath: .flink/tfx-bert-flink.jar, built from flink/src with the JDK's javac (the
# factory that lets a job stage no jars: see NO_STAGING_JAR in tfx_bert/flink_cluster.py).
FLINK_CP := .flink/classpath.txt
FLINK_SRC := $(wildcard flink/src/org/tfxbert/flink/*.java)
$(FLINK_CP): flink/pom.xml $(FLINK_SRC)
	@command -v java >/dev/null && command -v javac >/dev/null && command -v jar >/dev/null && command -v mvn >/dev/null || { \
	  echo "beam.runner=flink here needs a Java 17 JDK and Maven (java -version, javac -version, mvn -v); the rest of tfx-bert does not."; exit 1; }
	@mkdir -p .flink
	mvn -q -f flink/pom.xml dependency:build-classpath -Dmdep.outputFile=$(abspath .flink/maven-classpath.txt)
	@rm -rf .flink/classes && javac -d .flink/classes -cp "$$(cat .flink/maven-classpath.txt)" $(FLINK_SRC)
	@jar cf .flink/tfx-bert-flink.jar -C .flink/classes .
	@printf '%s:%s' "$$(cat .flink/maven-classpath.txt)" "$(abspath .flink/tfx-bert-flink.jar)" > $(FLINK_CP)

flink-setup: $(FLINK_CP)

flink-up: setup flink-setup
	$(VENV)/bin/tfx-bert flink up

flink-down:
	$(VENV)/bin/tfx-bert flink down

# Every Beam step on a two-TaskManager Flink cluster against the DirectRunner, alone (make test runs it too).
test-flink: setup flink-setup
	$(VENV)/bin/python -m pytest -m flink $(PYTEST_ARGS)

# Apache Airflow 2.11 with tfx-bert in an environment of its own (.tools/airflow, from airflow-env/uv.lock):
# Airflow moves a few of the main lock's pins, so it never enters .venv.
# Bytecode: only the modules its processes import are compiled (by importing them with bytecode
# writing on, once per lock), 35 s of CPU here, against 85 s for --compile-bytecode's every file.
AIRFLOW_ENV := .tools/airflow
$(AIRFLOW_ENV)/.compiled: airflow-env/uv.lock pipeline/airflow_executor.py
	@env -u PYTHONDONTWRITEBYTECODE $(AIRFLOW_ENV)/bin/python -c 'import importlib; \
	  from tfx_bert_app.pipeline import airflow_executor as e; \
	  [importlib.import_module(m) for m in e.TASK_MODULES + e.CLI_MODULES]' > $@.log 2>&1 || { \
	  tail -20 $@.log; echo "importing Airflow's and the pipeline's modules failed (log: $@.log)"; exit 1; }
	@touch $@

airflow-setup: check-python $(UV)
	@UV_PROJECT_ENVIRONMENT=$(abspath $(AIRFLOW_ENV)) $(UV) sync --frozen --project airflow-env --quiet
	@$(MAKE) -s --no-print-directory $(AIRFLOW_ENV)/.compiled
	@echo "Airflow environment ready: .tools/airflow (from airflow-env/uv.lock)"

# The pretraining and a fine-tuning pipeline under Airflow's scheduler, alone (make test runs it too).
test-airflow: setup airflow-setup
	$(VENV)/bin/python -m pytest -m airflow $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow and not flink and not airflow" $(PYTEST_ARGS)

# A separate environment for the PyTorch reference (never mixed with the TF stack).
.bench-hf/bin/python: | check-python
	$(PYTHON) -m venv .bench-hf
	.bench-hf/bin/pip install --quiet torch==2.13.0 "transformers>=4.44,<6" onnxruntime==1.32.0 onnx==1.23.2 onnxscript==0.7.2

# The published-checkpoint fixtures (tests/fixtures/published): small random BERTs saved and run
# by transformers / sentence-transformers themselves, in their own environment. The committed
# files are what the parity tests compare against; rerun only to change them.
.reference-hf/bin/python: | check-python
	$(PYTHON) -m venv .reference-hf
	.reference-hf/bin/pip install --quiet torch==2.13.0 "transformers>=4.44,<6" "sentence-transformers>=3" safetensors

published-fixtures: .reference-hf/bin/python
	.reference-hf/bin/python tests/fixtures/published/build_references.py

bench: setup .bench-hf/bin/python
	$(VENV)/bin/python benchmarks/tokenization_throughput.py
	$(VENV)/bin/python benchmarks/beam_components.py
	$(VENV)/bin/python benchmarks/pretraining_throughput.py
	$(VENV)/bin/python benchmarks/demo_timings.py
	$(VENV)/bin/python benchmarks/serving_throughput.py
	$(VENV)/bin/python benchmarks/cpu_serving.py --grpc
	$(VENV)/bin/python benchmarks/request_cost.py
	$(VENV)/bin/python benchmarks/finetune_throughput.py
	$(VENV)/bin/python benchmarks/vector_search.py
	$(VENV)/bin/python benchmarks/index_throughput.py
	$(VENV)/bin/python benchmarks/rerank_latency.py
	$(VENV)/bin/python benchmarks/long_documents.py
	$(VENV)/bin/python benchmarks/domain_adaptation.py

# The Kubeflow image (needs a Docker engine; none runs on the development machines).
IMAGE ?= tfx-bert:latest
image:
	docker build -f kubeflow/Dockerfile --build-arg UV_VERSION=$(UV_VERSION) -t $(IMAGE) .
	@echo "push it with: docker push $(IMAGE); compile with: tfx-bert compile --image $(IMAGE) ..."

clean:
	rm -rf work .pytest_cache
