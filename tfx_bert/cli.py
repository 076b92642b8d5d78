"""``tfx-bert``: the project's command line.

    tfx-bert demo                      # whole job on the embedded default data
    tfx-bert pretrain --runner beam    # one pipeline, with a chosen orchestrator
    tfx-bert finetune --set finetune.train_steps=500
    tfx-bert score --input test.tsv --output scores.jsonl   # batch scoring with the pushed model
    tfx-bert serve / predict / check-ops / generate-data / show-config

Configuration: defaults <- ``--config file.yaml`` <- named flags <- ``--set section.key=value``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from tfx_bert import progress, tasks

SAMPLE_SENTENCES = [
    "the soup was really wonderful .",
    "i think the rocket is terrible .",
    "the singer and the band were quite brilliant .",
    "what a dull match , very awful .",
]


def _config(args, demo: bool = False, preset: tuple = ()):
    """The run's configuration: ``preset`` (a command's own settings), then the flags, then ``--set``."""
    from tfx_bert import config as config_lib

    overrides = list(preset)
    if args.work_dir:
        overrides.append(f"work_dir={args.work_dir}")
    if getattr(args, "model_size", None):
        overrides.append(f"pretrain.model_size={args.model_size}")
    if getattr(args, "pretrain_steps", None):
        overrides.append(f"pretrain.train_steps={args.pretrain_steps}")
    if getattr(args, "finetune_steps", None):
        overrides.append(f"finetune.train_steps={args.finetune_steps}")
    task = getattr(args, "task", None)
    if task:  # before --set, so an explicit --set wins; model and pipeline names follow the task
        overrides.append(f"finetune.task={task}")
    overrides += args.set or []
    return config_lib.load_config(args.config, overrides, demo=demo)


def _run_pipeline(kind: str, config, runner: str) -> float:
    """Runs one pipeline, prints its summary; returns wall seconds."""
    from tfx_bert_app.pipeline import common, runs
    from tfx_bert import run_summary

    progress.install(os.path.join(os.path.abspath(config.work_dir), "logs", f"{kind}.log"))
    if runner == "beam":
        from tfx_bert_app.pipeline import beam_runner as runner_module
    else:
        from tfx_bert_app.pipeline import local_runner as runner_module

    def announce(pipeline, recorded):
        print(f"\n== {pipeline.pipeline_info.pipeline_name} ({runner} runner) ==\n(configuration: {recorded})",
              flush=True)

    pipeline, start = runs.run(kind, config, runner_module.execute, announce)
    took = time.time() - start
    runs = run_summary.component_runs(common.metadata_config(config), pipeline.pipeline_info.pipeline_name,
                                      int(start * 1000) - 1000)
    print(run_summary.format_runs(pipeline.pipeline_info.pipeline_name, runs, took), flush=True)
    for line in run_summary.tuner_trials(runs) + run_summary.training_curves(runs) + run_summary.worst_slices(runs):
        print(line, flush=True)
    run_summary.check_gate(runs)
    print(f"(full log: {os.path.join(os.path.abspath(config.work_dir), 'logs', kind + '.log')})", flush=True)
    return took


def _latest_version_dir(base: str) -> str:
    versions = [d for d in os.listdir(base) if d.isdigit()] if os.path.isdir(base) else []
    if not versions:
        raise FileNotFoundError(
            f"No pushed model under {base}: the Evaluator did not bless the model "
            "(see the Evaluator's output) or the fine-tuning pipeline has not run.")
    return os.path.join(base, max(versions, key=int))


class DevServer:
    """The development gRPC server in a child process, for the demo and tests."""

    def __init__(self, model_name: str | None, base_path: str | None, host: str = "127.0.0.1", port: int = 0,
                 poll_seconds: float = 1.0, log_path: str | None = None, model_config_file: str | None = None):
        """One model (``model_name`` at ``base_path``), or several (``model_config_file``)."""
        self._dir = tempfile.mkdtemp(prefix="tfx-bert-server-")
        port_file = os.path.join(self._dir, "port")
        self._log = open(log_path or os.path.join(self._dir, "server.log"), "w")
        models = (["--model_config_file", model_config_file] if model_config_file
                  else ["--model_name", model_name, "--model_base_path", base_path])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfx_bert.serving.server", *models, "--host", host, "--port", str(port),
             "--poll_seconds", str(poll_seconds), "--port_file", port_file],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while not os.path.exists(port_file):
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited with {self.process.returncode}; see {self._log.name}")
            if time.time() > deadline:
                self.stop()
                raise TimeoutError(f"The server did not start in 180s; see {self._log.name}")
            time.sleep(0.2)
        with open(port_file) as f:
            self.target = f"{host}:{int(f.read())}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


DISTILL_ON = "distill.enabled=true"


def cmd_demo(args) -> int:
    """Pretrain -> fine-tune and distil -> push both -> serve over gRPC -> predict, on the
    embedded data; the teacher and the student side by side."""
    if args.loop:
        return _demo_loop(args)
    t0 = time.time()
    config = _config(args, demo=True, preset=(DISTILL_ON,))
    from tfx_bert import demo_data, distill_summary
    from tfx_bert.serving import client as client_lib
    from tfx_bert.serving import model_config, op_check

    data = demo_data.write_demo_data(config.data_dir)
    dataset = tasks.get_task(config.finetune.task).demo.dataset
    print(f"Embedded data: corpus {data['corpus']}, {dataset} {data[dataset]}")
    times = {"pretrain": _run_pipeline("pretrain", config, args.runner)}
    times["finetune"] = _run_pipeline("finetune", config, args.runner)

    models = _pushed_models(config)
    for _, version_dir in models.values():
        op_check.check_servable(version_dir)
        print(f"\nPushed model {version_dir} uses only op types TF Serving 2.16 has.")
    start = time.time()
    config_file = os.path.join(os.path.abspath(config.work_dir), "logs", "models.config")
    with open(config_file, "w") as f:
        f.write(model_config.to_text([model_config.ModelConfig(name, base) for name, (base, _) in models.items()]))
    with DevServer(None, None, model_config_file=config_file,
                   log_path=os.path.join(os.path.abspath(config.work_dir), "logs", "server.log")) as server:
        with client_lib.ServingClient(server.target) as client:
            for name in models:
                version = client.wait_until_available(name)
                results = client.classify_texts(name, SAMPLE_SENTENCES)
                print(f"\n== Predictions over gRPC from {server.target} (model {name}, version {version}) ==")
                for r in results:
                    label = "positive" if r["class_id"] == 1 else "negative"
                    print(f"  {label:8} p={max(r['probabilities']):.3f}  {r['text']}")
    times["serve"] = time.time() - start
    _print_demo_summary(config, models[config.finetune.model_name][1], times, time.time() - t0)
    if config.distill.enabled:
        print(distill_summary.format_summary(distill_summary.read(config)))
    return 0


def _demo_loop(args) -> int:
    """Continuous training on the embedded sentiment data: three spans arrive one after the other
    (``demo_data.LOOP_SPANS``); the fine-tuning pipeline runs as each does. Span 1 trains and is
    pushed; span 2 carries label drift and the data gate stops it; span 3 continues from span 1's
    blessed model, is compared against it and pushed; gRPC predictions then come from span 3's
    version. The encoder: finetune.encoder_uri, else the latest pretrained one, else the demo's
    pretraining runs first."""
    from tfx_bert import demo_data, model_card
    from tfx_bert.run_summary import DataGateStopped
    from tfx_bert.serving import client as client_lib
    from tfx_bert_app.pipeline import common

    t0 = time.time()
    spans_dir = os.path.join(_config(args, demo=True).data_dir, "loop")
    config = _config(args, demo=True, preset=(
        f"finetune.data_dir={spans_dir}", f"finetune.train_pattern={demo_data.LOOP_TRAIN_PATTERN}",
        f"finetune.eval_pattern={demo_data.LOOP_EVAL_PATTERN}",
        "finetune.max_regression=0.02"))  # a new span may cost 2 points on the fixed eval set, no more
    if not config.finetune.encoder_uri:
        try:
            common.latest_encoder_uri(config)
        except FileNotFoundError:
            demo_data.write_demo_data(config.data_dir)
            _run_pipeline("pretrain", config, args.runner)
    outcomes = {}
    for span in sorted(demo_data.LOOP_SPANS):
        path = demo_data.write_sentiment_span(spans_dir, span)
        print(f"\n== Span {span} arrives: {path} ==", flush=True)
        try:
            _run_pipeline("finetune", config, args.runner)
        except DataGateStopped as e:
            outcomes[span] = f"stopped by the data gate ({e})"
            continue
        base = os.path.join(config.serving_base, config.finetune.model_name)
        card = json.load(open(os.path.join(_latest_version_dir(base), "assets.extra", model_card.CARD_JSON)))
        warm = card["model"].get("warm_started_from") or {}
        outcomes[span] = (f"pushed as version {card['model']['version']}"
                          + (f", continued from version {warm.get('version')}" if warm else ", from the encoder"))
    print("\n== Continuous training ==")
    for span, outcome in outcomes.items():
        print(f"  span {span}: {outcome}")
    name, base = config.finetune.model_name, os.path.join(config.serving_base, config.finetune.model_name)
    with DevServer(name, base, log_path=os.path.join(os.path.abspath(config.work_dir), "logs", "server.log")) as server:
        with client_lib.ServingClient(server.target) as client:
            version = client.wait_until_available(name)
            print(f"\n== Predictions over gRPC from {server.target} (model {name}, version {version}) ==")
            for r in client.classify_texts(name, SAMPLE_SENTENCES):
                print(f"  {'positive' if r['class_id'] == 1 else 'negative':8} p={max(r['probabilities']):.3f}  {r['text']}")
    print(f"\n  model card: tfx-bert model-card {name} --work-dir {config.work_dir}; total {time.time() - t0:.0f}s")
    return 0


def _pushed_models(config) -> dict:
    """{model name: (base path, latest pushed version dir)}: the fine-tuned model and, when
    distillation is on and its student was blessed, the student."""
    names = [config.finetune.model_name] + ([config.distill.model_name] if config.distill.enabled else [])
    models = {}
    for name in names:
        base = os.path.join(config.serving_base, name)
        try:
            models[name] = (base, _latest_version_dir(base))
        except FileNotFoundError:
            if name == config.finetune.model_name:
                raise
            print(f"\nThe student {name} was not blessed (it kept less than distill.min_retention="
                  f"{config.distill.min_retention} of the teacher's metric): nothing pushed.")
    return models


def _print_demo_summary(config, version_dir: str, times: dict, total: float) -> None:
    from tfx_bert_app.pipeline import common

    encoder = common.latest_encoder_uri(config)
    metrics_path = os.path.join(encoder, "pretraining_metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    print("\n== Summary ==")
    print(f"  pretrained encoder : {encoder}")
    if metrics:
        print(f"    MLM accuracy {metrics.get('mlm_accuracy', 0):.3f} (unigram baseline "
              f"{metrics.get('mlm_unigram_baseline_accuracy', 0):.3f}), NSP accuracy "
              f"{metrics.get('nsp_accuracy', 0):.3f} (majority baseline "
              f"{metrics.get('nsp_majority_baseline_accuracy', 0):.3f}), "
              f"MLM perplexity {metrics.get('mlm_perplexity', 0):.1f}")
    print(f"  served model       : {version_dir}")
    print("  timings            : " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()) + f", total {total:.0f}s")
    print("  TensorBoard        : tensorboard --logdir " + os.path.join(config.pipelines_root))
    print("  query it yourself  : tfx-bert serve --work-dir " + config.work_dir +
          "   then   tfx-bert predict 'the soup was wonderful .'")


def cmd_pipeline(kind: str, preset: tuple = ()):
    def run(args) -> int:
        config = _config(args, demo=args.demo, preset=preset)
        _run_pipeline(kind, config, args.runner)
        if kind == "finetune" and config.distill.enabled:
            from tfx_bert import distill_summary

            print(distill_summary.format_summary(distill_summary.read(config)))
        return 0
    return run


def cmd_score(args) -> int:
    """Batch scoring: the scoring pipeline (TaskExampleGen -> ServedModel -> BulkInferrer), then
    its PredictionLogs decoded by the task into ``score.output``."""
    from tfx_bert import scoring
    from tfx_bert_app.pipeline import common

    flags = {"model_name": args.model, "version": args.version, "input_pattern": args.input, "output": args.output,
             "format": args.format}
    config = _config(args, demo=args.demo, preset=tuple(f"score.{k}={v}" for k, v in flags.items() if v))
    _run_pipeline("score", config, args.runner)
    s, task = config.score, tasks.get_task(config.finetune.task)
    result = common.newest_artifact(config, s.pipeline_name, "InferenceResult")
    examples = common.newest_artifact(config, s.pipeline_name, "Examples")
    rows = scoring.write_rows((scoring.decode_log(task, log) for log in scoring.read_logs(result.uri)),
                              s.output, s.format)
    skipped = scoring.skipped_records(examples.uri)
    print(f"scored {rows} rows of {s.input_pattern} with {s.model_name} -> {s.output}"
          + (f"; skipped {sum(skipped.values())} bad records: {skipped}" if skipped else ""), flush=True)
    return 0


def cmd_fill_mask(args) -> int:
    """The top-K tokens for each [MASK] of each text, from a model's MLM head."""
    from tfx_bert_app.models import fill_mask

    if args.top_k < 1:
        raise ValueError(f"--top-k must be 1 or more, got {args.top_k}.")
    results = fill_mask.MaskedLM(args.model, args.casing).fill(args.texts, args.top_k)
    if args.json:  # one entry per text: its candidates (a list of them per mask where it has several)
        print(json.dumps([masks[0] if len(masks) == 1 else masks for masks in results], ensure_ascii=False))
        return 0
    for text, masks in zip(args.texts, results):
        print(fill_mask.describe(text, masks))
    return 0


def cmd_serve(args) -> int:
    from tfx_bert.serving import model_config, server

    config = _config(args)
    name = args.model_name or config.finetune.model_name
    base = args.model_base_path or os.path.join(config.serving_base, name)
    s = config.serving
    flags = ["--host", s.host, "--port", str(args.port or s.grpc_port), "--rest_api_port", str(s.rest_port),
             "--file_system_poll_wait_seconds", str(s.poll_seconds), "--rest_api_timeout_in_ms", str(s.rest_timeout_ms),
             "--rest_max_request_bytes", str(s.rest_max_request_bytes), "--max_rows", str(s.max_rows)]
    if args.model_config_file:
        flags += ["--model_config_file", args.model_config_file]
    else:
        flags += ["--model_name", name, "--model_base_path", base]
    if s.enable_batching:
        batching = os.path.join(os.path.abspath(config.work_dir), "batching.config")
        os.makedirs(os.path.dirname(batching), exist_ok=True)
        with open(batching, "w") as f:
            f.write(model_config.batching_parameters_text(
                s.max_batch_size, s.batch_timeout_micros, s.num_batch_threads or os.cpu_count() or 1))
        flags += ["--enable_batching", "--batching_parameters_file", batching]
    if args.ssl_config_file:
        flags += ["--ssl_config_file", args.ssl_config_file]
    server.main(flags + model_config.parallelism_flags(s.intra_op_parallelism, s.inter_op_parallelism))
    return 0


# Older names ``tfx-bert predict --task`` took, kept working: the task vocabulary is finetune's.
PREDICT_TASK_ALIASES = {"classification": tasks.DEFAULT_TASK}


def _task_name(value: str) -> str:
    """``--task``: a registered task, ``embed`` or an older alias (predict), or a task class by
    dotted path; an unknown one is argparse's usage error, naming the known ones."""
    if value == "embed" or value in PREDICT_TASK_ALIASES:
        return value
    try:
        tasks.get_task(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def cmd_predict(args) -> int:
    from tfx_bert.serving import client as client_lib
    from tfx_bert.serving import task_clients

    if args.context_file:
        with open(args.context_file, encoding="utf-8") as f:
            args.context = f.read()
    task = PREDICT_TASK_ALIASES.get(args.task, args.task)
    if task != "embed" and args.text_b:  # e.g. a pair model queried with the single-text task
        task = tasks.get_task(task).with_second_text().name
    if task != "embed":
        try:  # the request's parts are checked before connecting
            task_clients.request_inputs(tasks.get_task(task), args.texts, args.text_b, args.context, args.query)
        except ValueError as e:
            print(f"tfx-bert predict: {e}", file=sys.stderr)
            return 2

    import grpc

    with client_lib.ServingClient(args.target, timeout=args.timeout, retries=args.retries,
                                  root_cert=args.root_cert, client_cert=args.client_cert,
                                  client_key=args.client_key, server_name=args.server_name) as client:
        try:
            if task == "embed":
                results = task_clients.embed(client, args.model_name, args.texts)
            else:
                results = task_clients.predict(client, task, args.model_name, args.texts, text_b=args.text_b,
                                               context=args.context, query=args.query,
                                               version_label=args.version_label)
        except grpc.RpcError as e:
            print(f"tfx-bert predict: {e.code().name} from {args.target}: {e.details()}", file=sys.stderr)
            return 1
    for r in results:
        print(json.dumps(r))
    return 0


def _lexical_index(args):
    """BM25 for --mode bm25/hybrid: loaded from --bm25-index, else built from --corpus (and saved
    to --bm25-index when given)."""
    from tfx_bert.lexical import BM25Index

    if args.bm25_index and os.path.exists(args.bm25_index):
        return BM25Index.load(args.bm25_index)
    if not args.corpus:
        raise ValueError(f"--mode {args.mode} ranks the documents' text: give --corpus (the indexed corpus file) "
                         "or --bm25-index (a saved index).")
    index = BM25Index.build(_read_corpus(args))
    if args.bm25_index:
        index.save(args.bm25_index)
    return index


def _read_corpus(args) -> dict:
    from tfx_bert.corpus_embedding import read_corpus

    if not args.corpus:
        raise ValueError("Re-ranking reads the documents' text: give --corpus (the indexed corpus file).")
    return read_corpus(args.corpus, args.corpus_format, strict=False)[0]


def cmd_retrieve(args) -> int:
    import contextlib

    from tfx_bert.retrieval import HybridRetriever, Retriever, RetrieveThenRerank
    from tfx_bert.vector_store import VectorStore

    def search(dense, scorer):
        retriever = (_lexical_index(args) if args.mode == "bm25" else
                     HybridRetriever(dense, _lexical_index(args)) if args.mode == "hybrid" else dense)
        if scorer is None:
            return retriever.retrieve(args.queries, args.k)
        return RetrieveThenRerank(retriever, scorer, _read_corpus(args), k=args.candidates).search(args.queries,
                                                                                                   args.k)

    dense_from_server = args.mode != "bm25" and not args.model_dir
    try:
        with contextlib.ExitStack() as stack:
            if dense_from_server or args.rerank_model_name:
                from tfx_bert.serving import client as client_lib

                client, reranker = (stack.enter_context(client_lib.ServingClient(target, timeout=args.timeout))
                                    for target in (args.target, args.rerank_target or args.target))
            dense = None
            if args.mode != "bm25":
                if not args.collection:
                    raise ValueError(f"--mode {args.mode} searches the vector store: give --collection.")
                store = VectorStore(args.store_uri, args.collection)
                dense = (Retriever.from_serving(client, args.model_name, store, nprobe=args.nprobe) if dense_from_server
                         else Retriever.from_saved_model(args.model_dir, store, nprobe=args.nprobe))
            scorer = (RetrieveThenRerank.saved_model_scorer(args.rerank_model_dir) if args.rerank_model_dir else
                      RetrieveThenRerank.serving_scorer(reranker, args.rerank_model_name) if args.rerank_model_name
                      else None)
            results = search(dense, scorer)
    except (ValueError, RuntimeError, KeyError, FileNotFoundError) as e:
        print(f"tfx-bert retrieve: {e}", file=sys.stderr)
        return 2
    for query, hits in zip(args.queries, results):
        print(json.dumps({"query": query, "hits": [{"id": d, "score": round(s, 6)} for d, s in hits]}))
    return 0


def cmd_check_ops(args) -> int:
    from tfx_bert.serving import op_check

    missing = op_check.unsupported_ops(args.saved_model_dir)
    if missing:
        print(f"NOT servable by TF Serving 2.16; missing op types: {', '.join(missing)}")
        return 1
    print(f"OK: {args.saved_model_dir} uses only op types TF Serving 2.16 has.")
    return 0


def cmd_convert_checkpoint(args) -> int:
    from tfx_bert_app.models import checkpoint_conversion

    source = args.source or args.tf1_checkpoint
    if not source:
        raise ValueError("convert-checkpoint needs the checkpoint directory: tfx-bert convert-checkpoint SRC --output DIR")
    kind = checkpoint_conversion.detect_format(source) if args.format == "auto" else args.format
    out = checkpoint_conversion.convert_checkpoint(source, args.output, args.casing, kind)
    if out == source:
        print(f"{source} is a keras-hub preset: fine-tune from it as it is (--set finetune.encoder_uri={source})")
    else:
        print(f"Encoder ({kind}) written to {out}; fine-tune from it with --set finetune.encoder_uri={out}")
    return 0


def cmd_export_embedder(args) -> int:
    if args.push:  # the embedding pipeline: the Pusher's checks, a versioned push, optional indexing
        args.set = [f"finetune.encoder_uri={args.encoder}", f"finetune.encoder_casing={args.casing}",
                    *([f"embedder.pooling={args.pooling}"] if args.pooling else []),
                    *([f"embedder.normalize={str(args.normalize).lower()}"] if args.normalize is not None else []),
                    *([f"embedder.max_seq_length={args.max_seq_length}"] if args.max_seq_length else []),
                    *(args.set or [])]
        config = _config(args)
        _run_pipeline("embed", config, args.runner)
        print(f"Pushed to {os.path.join(config.serving_base, config.embedder.model_name)}; serve it with "
              f"tfx-bert serve --model-name {config.embedder.model_name}")
        return 0
    if not args.output:
        raise ValueError("export-embedder needs --output DIR (or --push to run the embedding pipeline)")
    import tempfile

    from tfx_bert.serving import op_check
    from tfx_bert_app.models import checkpoint_conversion, embedder

    with tempfile.TemporaryDirectory() as scratch:
        encoder_dir = checkpoint_conversion.convert_checkpoint(args.encoder, os.path.join(scratch, "encoder"),
                                                               args.casing)
        settings = embedder.embedder_settings(encoder_dir, args.pooling, args.normalize, args.max_seq_length)
        embedder.export_embedder(encoder_dir, args.output, settings, source=args.encoder)
    missing = op_check.unsupported_ops(args.output)
    if missing:
        print(f"NOT servable by TF Serving 2.16; missing op types: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"Embedding model written to {args.output} (pooling {settings.pooling}, "
          f"{'normalised' if settings.normalize else 'not normalised'}, {settings.max_seq_length} tokens); "
          f"signature 'embed': text -> embedding. Serve it as a version directory: "
          f"cp -r {args.output} <serving_base>/<name>/1")
    return 0


def cmd_generate_data(args) -> int:
    from tfx_bert import demo_data

    print(json.dumps(demo_data.write_demo_data(args.output_dir), indent=2))
    return 0


def cmd_model_card(args) -> int:
    """Prints ``assets.extra/model_card.<format>`` of a pushed version (default: the newest)."""
    from tfx_bert import model_card

    config = _config(args)
    base = os.path.join(config.serving_base, args.model)
    version_dir = os.path.join(base, args.version) if args.version else _latest_version_dir(base)
    path = os.path.join(version_dir, "assets.extra", {"md": model_card.CARD_MD, "html": model_card.CARD_HTML,
                                                       "json": model_card.CARD_JSON}[args.format])
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no model card (the version does not exist, or was pushed before model "
                                "cards were written).")
    with open(path, encoding="utf-8") as f:
        print(f.read())
    return 0


def cmd_schema(args) -> int:
    """``schema promote``: copies the newest inferred schema of the fine-tuning pipeline to
    ``--output`` or ``finetune.schema_path``, to be edited (domains, presence, drift
    comparators) and read by ImportSchemaGen from the next run on."""
    import glob
    import shutil

    config = _config(args, demo=args.demo)
    output = args.output or config.finetune.schema_path
    if not output:
        raise ValueError("schema promote needs a destination: --output PATH, or finetune.schema_path.")
    pattern = os.path.join(config.pipelines_root, config.finetune.pipeline_name, "SchemaGen", "schema", "*",
                           "schema.pbtxt")
    found = sorted(glob.glob(pattern), key=lambda p: int(p.split(os.sep)[-2]) if p.split(os.sep)[-2].isdigit() else -1)
    if not found:
        raise FileNotFoundError(f"No inferred schema under {os.path.dirname(os.path.dirname(pattern))}: run "
                                "`tfx-bert finetune` once without finetune.schema_path first.")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    shutil.copyfile(found[-1], output)
    print(f"Promoted {found[-1]} to {output}: set finetune.schema_path={output} (the data gate then validates "
          "every span against it; edit it to tighten domains or presence).")
    return 0


def cmd_show_config(args) -> int:
    print(_config(args, demo=args.demo).effective_yaml())
    return 0


def cmd_serving_manifests(args) -> int:
    from tfx_bert_app.kubeflow import serving_manifests

    path = serving_manifests.write_manifests(_config(args, demo=args.demo), args.output)
    print(f"Wrote {path}; apply it with: kubectl apply -f {path}")
    return 0


def cmd_airflow_dag(args) -> int:
    """Writes the pipeline's DAG file (pipeline/airflow_runner.py) for Airflow's scheduler."""
    try:
        from tfx_bert_app.pipeline import airflow_runner
        import airflow  # noqa: F401 (its absence is the usual mistake: say so before any work)
    except ImportError as e:
        raise RuntimeError(f"Airflow is not installed in this environment ({e}): run `make airflow-setup` and use "
                           ".tools/airflow/bin/tfx-bert") from None
    config = _config(args, demo=args.demo)
    if not os.path.isabs(config.work_dir):  # the tasks run in processes of their own: make it absolute here
        args.set = (args.set or []) + [f"work_dir={os.path.abspath(config.work_dir)}"]
        config = _config(args, demo=args.demo)
    path = airflow_runner.write_dag_file(args.pipeline, config, os.path.expanduser(args.dags_folder))
    if args.register:
        airflow_runner.register_dag(path)
    registered = " and registered it in Airflow's database" if args.register else ""
    print(f"wrote {path}{registered}\nDAG id: {airflow_runner.runs.pipeline_name(args.pipeline, config)} "
          "(airflow dags unpause / trigger it; the scheduler runs each component as a task)")
    return 0


def cmd_compile(args) -> int:
    from tfx_bert_app.kubeflow import runner

    return runner.run(args)


def _add_config_flags(parser, demo_flag: bool = True) -> None:
    parser.add_argument("--config", help="YAML file with configuration (see tfx_bert/configs/demo.yaml)")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set pretrain.train_steps=200")
    parser.add_argument("--work-dir", help="where pipelines, metadata, data and models go")
    parser.add_argument("--model-size", help="tiny, mini, small, medium, base or large")
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--finetune-steps", type=int)
    if demo_flag:
        parser.add_argument("--demo", action="store_true", help="start from the tiny demo configuration")


def _add_runner_flag(parser) -> None:
    parser.add_argument("--runner", choices=["local", "beam"], default="local",
                        help="TFX orchestrator: LocalDagRunner or BeamDagRunner (Beam steps follow the beam settings)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfx-bert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="pretrain, fine-tune, push, serve and query on the embedded data")
    _add_config_flags(p, demo_flag=False)
    p.add_argument("--loop", action="store_true", help="continuous training instead: three spans of sentiment data "
                                                        "arrive; the pipeline runs as each does (a drifted one is "
                                                        "stopped by the data gate, the next continues from the "
                                                        "blessed model)")
    _add_runner_flag(p)
    p.set_defaults(fn=cmd_demo)

    for command, kind, preset, help_text in (
            ("pretrain", "pretrain", (), "run the pretraining pipeline"),
            ("finetune", "finetune", (), "run the fine-tuning pipeline of finetune.task"),
            ("distill", "finetune", (DISTILL_ON,), "run the fine-tuning pipeline with its distillation branch "
             "(distill.enabled=true): the fine-tuned teacher, then a smaller student, each gated and pushed")):
        p = sub.add_parser(command, help=help_text)
        _add_config_flags(p)
        _add_runner_flag(p)
        if kind == "finetune":
            p.add_argument("--task", type=_task_name, metavar="TASK",
                           help=f"the task: {', '.join(sorted(tasks.TASKS))}, or a task class as package.module:Class "
                                "(sets finetune.task, and model_name / pipeline_name to match)")
        p.set_defaults(fn=cmd_pipeline(kind, preset))

    p = sub.add_parser("score", help="score files with a pushed model (TFX BulkInferrer on Beam) into JSON lines "
                                     "or CSV; the files are read with finetune's loader settings")
    _add_config_flags(p)
    p.add_argument("--model", help="the pushed model's name (default: finetune.model_name)")
    p.add_argument("--version", help="a pushed version (default: the newest)")
    p.add_argument("--input", help="the files to score: a path or glob (score.input_pattern)")
    p.add_argument("--output", help="the scored file (default: <work_dir>/scores/<model>.<format>)")
    p.add_argument("--format", choices=["jsonl", "csv"])
    _add_runner_flag(p)
    p.set_defaults(fn=cmd_score)

    p = sub.add_parser("fill-mask", help="the top-K tokens for each [MASK] of a text, from a model's MLM head: "
                                         "check what (continued) pretraining learned")
    p.add_argument("--model", required=True, help="a pretraining run's model directory "
                                                   "(<work_dir>/pipelines/tfx-bert-pretrain/Trainer/model/<id>), or any "
                                                   "checkpoint with an MLM head that pretrain.init_from takes (Hugging "
                                                   "Face BertForPreTraining / BertForMaskedLM, google-research TF1, a "
                                                   "keras-hub BertMaskedLM preset)")
    p.add_argument("--casing", choices=["auto", "uncased", "cased"], default="auto",
                   help="the checkpoint's casing where its files do not say (google-research TF1 directories)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON list, an entry per text: [{\"token\": ..., "
                                                       "\"score\": ...}, ...] (a list of those per mask for a text "
                                                       "with several)")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="text with [MASK] where a word is to be predicted")
    p.set_defaults(fn=cmd_fill_mask)

    p = sub.add_parser("compile", help="compile a pipeline for Kubeflow Pipelines v2 / Vertex (and submit a run)")
    from tfx_bert_app.kubeflow import arguments as kubeflow_arguments

    kubeflow_arguments.add_arguments(p)
    p.set_defaults(fn=cmd_compile)

    p = sub.add_parser("airflow-dag", help="write a pipeline as an Apache Airflow DAG file (TFX's AirflowDagRunner) "
                                           "into a DAGs folder; needs the Airflow environment (make airflow-setup)")
    _add_config_flags(p)
    p.add_argument("--pipeline", choices=["pretrain", "finetune", "embed", "score"], default="pretrain")
    p.add_argument("--task", type=_task_name, metavar="TASK", help="as finetune's --task")
    p.add_argument("--dags-folder", default=os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dags"),
                   help="Airflow's dags_folder (default: $AIRFLOW_HOME/dags)")
    p.add_argument("--register", action="store_true",
                   help="also write the DAG to Airflow's database (as `airflow dags reserialize` would), so the "
                        "scheduler can run it at once")
    p.set_defaults(fn=cmd_airflow_dag)

    p = sub.add_parser("serving-manifests",
                       help="write Kubernetes manifests running TF Serving over the push destination")
    _add_config_flags(p)
    p.add_argument("--output", default="k8s", help="directory for serving.yaml")
    p.set_defaults(fn=cmd_serving_manifests)

    p = sub.add_parser("serve", help="serve pushed models over TF Serving's gRPC API (development server)")
    _add_config_flags(p, demo_flag=False)
    p.add_argument("--model-name")
    p.add_argument("--model-base-path")
    p.add_argument("--port", type=int)
    p.add_argument("--model-config-file", help="TF Serving model_config_file (several models, versions, labels)")
    p.add_argument("--ssl-config-file", help="TF Serving ssl_config_file (server_key, server_cert, ...)")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("predict", help="send raw text to a TF Serving endpoint")
    p.add_argument("texts", nargs="+")
    p.add_argument("--target", default="127.0.0.1:8500")
    p.add_argument("--model-name", default=tasks.DEFAULT_TASK)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    p.add_argument("--retries", type=int, default=3, help="retries on UNAVAILABLE, with backoff")
    p.add_argument("--task", type=_task_name, default=tasks.DEFAULT_TASK, metavar="TASK",
                   help=f"the served model's task ({', '.join(sorted(tasks.TASKS))}, or finetune's package.module:Class; "
                        "embed: sentence embeddings), which sets the request's inputs and how "
                        "the outputs are read: classes with probabilities (pairs: with --text-b), label sets, entity "
                        "spans, answers (qa: the texts are questions about --context), pair similarity (--text-b), "
                        "passage scores (rerank, retrieval: the texts are passages for --query); embed: sentence "
                        "embeddings. 'classification' is an older name of sentiment")
    p.add_argument("--text-b", action="append", help="pair tasks: the second text of each pair (repeat, one per text)")
    p.add_argument("--context", help="qa: the passage to answer the questions from")
    p.add_argument("--query", help="rerank / retrieval: the query the passages (the texts) are scored for")
    p.add_argument("--context-file", help="qa: read the passage from this file")
    p.add_argument("--version-label", help="serve a labelled version (model_config_file version_labels)")
    p.add_argument("--root-cert", help="PEM of the CA that signed the server's certificate (turns TLS on)")
    p.add_argument("--client-cert", help="PEM client certificate (mutual TLS)")
    p.add_argument("--client-key", help="PEM client key (mutual TLS)")
    p.add_argument("--server-name", help="expected server name in its certificate, if not the target host")
    p.set_defaults(fn=cmd_predict)

    p = sub.add_parser("retrieve", help="top-k documents for queries: query embedding -> the vector store, "
                                        "BM25, or both fused")
    p.add_argument("queries", nargs="+")
    p.add_argument("--mode", default="dense", choices=["dense", "bm25", "hybrid"],
                   help="dense: the vector store; bm25: lexical (needs --corpus or --bm25-index); hybrid: both, "
                        "fused by reciprocal rank fusion")
    p.add_argument("--bm25-index", help="a saved BM25 index folder (built from --corpus and saved here if missing)")
    p.add_argument("--store-uri", default="work/vectors/milvus.db",
                   help="Milvus: a Milvus Lite file or http(s)://host:19530")
    p.add_argument("--collection", help="the collection (the model name, by default); dense and hybrid modes")
    p.add_argument("--model-dir", help="embed queries in process with this SavedModel's embed signature")
    p.add_argument("--target", default="127.0.0.1:8500", help="or: a TF Serving endpoint serving the model")
    p.add_argument("--model-name", default=tasks.DEFAULT_EMBEDDING_TASK)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--nprobe", type=int, default=16, help="IVF lists searched (recall vs latency)")
    p.add_argument("--rerank-model-dir", help="re-rank the candidates with this cross-encoder SavedModel, in process")
    p.add_argument("--rerank-model-name", help="or: with this cross-encoder model on --rerank-target")
    p.add_argument("--rerank-target", help="the endpoint serving --rerank-model-name (default: --target)")
    p.add_argument("--candidates", type=int, default=20, help="candidates retrieved for re-ranking")
    p.add_argument("--corpus", help="re-ranking and BM25: the indexed corpus file (the documents' text)")
    p.add_argument("--corpus-format", default="beir", choices=["beir", "msmarco"])
    p.set_defaults(fn=cmd_retrieve)

    p = sub.add_parser("check-ops", help="can TF Serving 2.16 load this SavedModel?")
    p.add_argument("saved_model_dir")
    p.set_defaults(fn=cmd_check_ops)

    p = sub.add_parser("convert-checkpoint", help="turn a published BERT (Hugging Face, sentence-transformers, "
                                                  "google-research TF1) into an encoder dir")
    p.add_argument("source", nargs="?", default="", help="the checkpoint directory (local or gs://)")
    p.add_argument("--tf1-checkpoint", default="", help="(older spelling of SRC for a TF1 directory)")
    p.add_argument("--output", required=True)
    p.add_argument("--format", choices=["auto", "huggingface", "sentence-transformers", "tf1", "keras-hub"],
                   default="auto", help="auto: detected from the directory's files")
    p.add_argument("--casing", choices=["auto", "uncased", "cased"], default="auto",
                   help="auto: the checkpoint's tokenizer_config.json (TF1 directories have none: give it)")
    p.set_defaults(fn=cmd_convert_checkpoint)

    p = sub.add_parser("export-embedder", help="serve a pretrained or published encoder as a sentence-embedding "
                                               "SavedModel, without fine-tuning")
    p.add_argument("--encoder", required=True, help="an encoder, keras-hub preset, Hugging Face, "
                                                    "sentence-transformers or TF1 checkpoint directory")
    p.add_argument("--output", help="the SavedModel directory to write")
    p.add_argument("--push", action="store_true", help="run the embedding pipeline instead: the Pusher's checks, "
                                                       "a version under serving_base/embedder.model_name, and "
                                                       "embedder.index_corpus indexed if set")
    _add_runner_flag(p)
    _add_config_flags(p, demo_flag=False)
    p.add_argument("--pooling", choices=["mean", "max", "cls"], default=None,
                   help="default: the sentence-transformers model's own, else mean")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise the embedding (default: the model's own, else yes)")
    p.add_argument("--max-seq-length", type=int, default=None, help="default: the model's own, else 128")
    p.add_argument("--casing", choices=["auto", "uncased", "cased"], default="auto")
    p.set_defaults(fn=cmd_export_embedder)

    p = sub.add_parser("generate-data", help="write the embedded demo corpus and sentiment data")
    p.add_argument("--output-dir", default="work/data")
    p.set_defaults(fn=cmd_generate_data)

    p = sub.add_parser("model-card", help="print the model card of a pushed version")
    p.add_argument("model", help="the model name (its directory under the serving base)")
    p.add_argument("--version", help="default: the newest pushed version")
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    _add_config_flags(p, demo_flag=False)
    p.set_defaults(fn=cmd_model_card)

    p = sub.add_parser("schema", help="curate the fine-tuning data's schema (the data gate validates each span "
                                      "against finetune.schema_path)")
    p.add_argument("action", choices=["promote"], help="promote: the schema SchemaGen inferred in the fine-tuning "
                                                       "pipeline's latest run becomes the curated one")
    _add_config_flags(p)
    p.add_argument("--output", help="where to write it (default: finetune.schema_path)")
    p.set_defaults(fn=cmd_schema)

    p = sub.add_parser("show-config", help="print the configuration a run would use, resolved and validated")
    _add_config_flags(p)
    p.add_argument("--task", type=_task_name, metavar="TASK", help="as finetune's --task")
    p.set_defaults(fn=cmd_show_config)

    # Listed here for the help text; main() hands its arguments to tfx_bert.flink_cluster.
    sub.add_parser("flink", help="a local Flink cluster for beam.runner=flink: up | down | run -- COMMAND "
                                 "(tfx-bert flink --help)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["flink"]:  # its own parser: `run` passes everything after -- to a command
        from tfx_bert import flink_cluster

        return flink_cluster.main(argv[1:])
    progress.quiet_environment()
    args = build_parser().parse_args(argv)
    from tfx_bert.run_summary import DataGateStopped

    try:
        return args.fn(args)
    except DataGateStopped as e:  # not a failure of the tool: its last line names each anomaly
        print(f"tfx-bert {args.command}: {e}", file=sys.stderr, flush=True)
        return 3
    except (ValueError, FileNotFoundError, TimeoutError, RuntimeError) as e:
        if os.environ.get("TFX_BERT_DEBUG"):
            raise
        print(f"tfx-bert {args.command}: error: {e}\n(set TFX_BERT_DEBUG=1 for the traceback; "
              "pipeline logs are under <work_dir>/logs/)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
