"""Runs a compiled KFP v2 pipeline (``tfx-bert compile``'s PipelineJob) step by step on this
machine, as KFP's driver and launcher would on a cluster, without one: each container step is
its own process running the step's command and arguments from the spec (TFX's
``kubeflow_v2_run_executor``) with the executor input a launcher passes (parameter values, the
upstream artifacts' URIs and metadata, output URIs), in DAG order. Only artifacts pass between
steps; nothing is shared in memory. The run's artifacts live under ``root``.

What a cluster would do differently: the image (here this checkout's Python runs the command),
MLMD (here the resolver steps' queries see the artifacts of this run only: a first run has no
blessed model, as on a new cluster), caching (off) and parallel branches (here one at a time).
With ``preload`` (module names), a ``python -m`` step's process is forked from a server that has
imported those modules and nothing else (``tfx_bert/preloaded.py``), instead of starting an
interpreter: TensorFlow, TFX, Beam and TFMA take about 6 s of CPU to import, most of a small
step's time. It is still a fresh process per step with the spec's module and arguments; no step
runs in the server.
Trigger conditions (``tfx.dsl.Cond``) are evaluated on the producing step's output metadata; a
step whose condition does not hold, or whose input's producer was skipped, is skipped with
everything downstream of it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from tfx_bert import preloaded

_CONDITION = re.compile(r"^\(?inputs\.artifacts\['([^']+)'\]\.artifacts\[0\]\.metadata\['([^']+)'\] == "
                        r"([-0-9.e]+)\)?$")


def _order(tasks: dict) -> list[str]:
    """The tasks in an order where every task follows its dependencies (alphabetical among equals,
    so a run is reproducible)."""
    done, order = set(), []
    while len(order) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and set(t.get("dependentTasks", [])) <= done)
        if not ready:
            raise ValueError(f"the pipeline's DAG has a cycle among {sorted(set(tasks) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


def _schema_title(definition: dict) -> str:
    artifact_type = definition["artifactType"]
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return artifact_type["instanceSchema"].split("\n", 1)[0].split("title:", 1)[1].strip()


def _parameter(spec: dict, parameters: dict, name: str):
    if "runtimeValue" in spec:
        return spec["runtimeValue"]["constant"]
    if "constant" in spec:  # an importer's artifactUri
        return spec["constant"]
    if "componentInputParameter" in spec or "runtimeParameter" in spec:
        return parameters[spec.get("componentInputParameter") or spec["runtimeParameter"]]
    raise ValueError(f"parameter {name}: {spec} is not a constant or a pipeline parameter (not supported here)")


def _condition_holds(condition: str, inputs: dict, task: str) -> bool:
    match = _CONDITION.match(condition.strip())
    if not match:
        raise ValueError(f"{task}: trigger condition {condition!r} is not one this launcher evaluates")
    key, field, value = match.groups()
    artifacts = inputs.get(key, {}).get("artifacts", [])
    return bool(artifacts) and float(artifacts[0].get("metadata", {}).get(field, float("nan"))) == float(value)


# What a TFX step's process imports before its executor runs (TFX's KFP v2 entrypoint, the
# libraries its executors use): ``run_compiled``'s ``preload`` for this project's pipelines.
TFX_STEP_MODULES = ("tensorflow", "tensorflow_text", "tensorflow_transform", "tensorflow_model_analysis",
                    "apache_beam", "keras_hub", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor")


def _run(command: list[str], log_path: str, env: dict | None, cwd: str | None, preload: tuple) -> int:
    """Runs a step's command; returns its exit code. ``python -m X`` forks from the preloading
    server when there is a ``preload``, anything else starts as a process of its own."""
    if preload and command[:2] == [sys.executable, "-m"]:
        return preloaded.run_module(command[2], command[3:], log_path, preload, env, cwd)
    with open(log_path, "a", encoding="utf-8") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode


def _container_step(name: str, executor: dict, component: dict, task: dict, inputs: dict, parameters: dict,
                    root: str, env: dict | None, cwd: str | None, preload: tuple = ()) -> dict:
    """Runs one container step; returns its output artifacts {key: [artifact dicts]}."""
    step_dir = os.path.join(root, name)
    outputs = {key: {"artifacts": [{"name": f"{name}-{key}", "uri": os.path.join(step_dir, key),
                                    "type": {"schemaTitle": _schema_title(definition)}, "metadata": {}}]}
               for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
    values = {k: _parameter(v, parameters, k) for k, v in task.get("inputs", {}).get("parameters", {}).items()}
    output_file = os.path.join(step_dir, "executor_output.json")
    executor_input = {"inputs": {"parameterValues": values, "artifacts": inputs},
                      "outputs": {"artifacts": outputs, "outputFile": output_file}}
    container = executor["container"]
    command = [sys.executable if part == "python" else part for part in container["command"]]
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container.get("args", [])]
    for output in outputs.values():  # as KFP's launcher prepares a step's output folders
        os.makedirs(output["artifacts"][0]["uri"], exist_ok=True)
    open(os.path.join(step_dir, "log.txt"), "w").close()
    code = _run(command + args, os.path.join(step_dir, "log.txt"), env, cwd, preload)
    if code:
        with open(os.path.join(step_dir, "log.txt"), encoding="utf-8") as f:
            raise RuntimeError(f"step {name} exited with {code}; its log ({step_dir}/log.txt) ends:\n{f.read()[-4000:]}")
    with open(output_file, encoding="utf-8") as f:
        produced = json.load(f).get("artifacts", {})
    # The executor output names each artifact and its metadata; its type is the definition's.
    return {key: [{**outputs[key]["artifacts"][0], **artifact, "type": outputs[key]["artifacts"][0]["type"]}
                  for artifact in produced.get(key, outputs[key])["artifacts"]] for key in outputs}


def run_compiled(job: dict, root: str, parameters: dict | None = None, env: dict | None = None,
                 cwd: str | None = None, progress=print, preload: tuple = ()) -> dict:
    """Runs the PipelineJob ``job``; returns {task: {"state": "COMPLETE" | "SKIPPED", "seconds",
    "outputs": {key: [artifact dicts]}}}. ``parameters``: the run's parameter values (the
    compiled defaults otherwise); ``preload``: modules the step processes are forked with
    (``TFX_STEP_MODULES`` for this project's steps; empty: each step starts an interpreter)."""
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    values = {k: v.get("defaultValue") for k, v in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()}
    values.update(job.get("runtimeConfig", {}).get("parameterValues", {}))
    values.update(parameters or {})
    results: dict[str, dict] = {}
    for name in _order(tasks):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        sources = task.get("inputs", {}).get("artifacts", {})
        if any(results[s["taskOutputArtifact"]["producerTask"]]["state"] == "SKIPPED" for s in sources.values()):
            results[name] = {"state": "SKIPPED", "seconds": 0.0, "outputs": {}}
            continue
        inputs = {key: {"artifacts": results[s["taskOutputArtifact"]["producerTask"]]["outputs"].get(
                      s["taskOutputArtifact"]["outputArtifactKey"], [])} for key, s in sources.items()}
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not _condition_holds(condition, inputs, name):
            progress(f"  [kfp] {name}: skipped (its condition {condition} does not hold)")
            results[name] = {"state": "SKIPPED", "seconds": 0.0, "outputs": {}}
            continue
        start = time.time()
        if "importer" in executor:
            importer = executor["importer"]
            uri = _parameter(importer["artifactUri"], values, "artifactUri")
            outputs = {"result": [{"name": name, "uri": uri, "metadata": importer.get("metadata", {}),
                                   "type": {"schemaTitle": _schema_title({"artifactType": importer["typeSchema"]})}}]}
        elif "resolver" in executor:  # an MLMD query: this run's store is empty, as a new cluster's
            outputs = {key: [] for key in executor["resolver"]["outputArtifactQueries"]}
        else:
            progress(f"  [kfp] {name} ...")
            outputs = _container_step(name, executor, component, task, inputs, values, root, env, cwd, preload)
        results[name] = {"state": "COMPLETE", "seconds": time.time() - start, "outputs": outputs}
        if "container" in executor:
            progress(f"  [kfp] {name}: done in {results[name]['seconds']:.1f} s")
    return results
