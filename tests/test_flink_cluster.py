"""tfx_bert/flink_cluster.py: a Flink session cluster on 127.0.0.1 (JobManager, two
TaskManagers, Beam's Flink job server, the Python SDK workers), and every Beam step of the
pipelines run on it with the outputs the DirectRunner gives.

The cluster test is marked ``flink`` and ``slow``: it needs Java (the jars ``make flink-setup``
fetches, which its background job runs where they are missing); ``make test-flink`` runs it alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_setup
from tfx_bert import flink_cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_flink_address_is_loopback():
    conf = dict(line.split(": ", 1) for line in flink_cluster._flink_conf(flink_cluster.Ports(), 1, 2).splitlines())
    for key in ("jobmanager.rpc.address", "jobmanager.bind-host", "rest.address", "rest.bind-address",
                "taskmanager.bind-host", "taskmanager.host"):
        assert conf[key] == "127.0.0.1", key


def test_jobs_stage_no_jars_only_on_a_cluster_whose_taskmanagers_have_them():
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_bert import beam_options
    from tfx_bert import config as config_lib

    flag = f"--pipeline_resources_detector_factory_class={flink_cluster.NO_STAGING_FACTORY}"
    plain = flink_cluster.LocalFlinkCluster("/tmp/unused", cp="/a.jar:/b.jar")
    assert flag not in plain.beam_args
    cluster = flink_cluster.LocalFlinkCluster("/tmp/unused", cp=f"/a.jar:{flink_cluster.NO_STAGING_JAR}")
    args = beam_options.pipeline_args(config_lib.load_config(overrides=cluster.config_overrides))
    assert flag in args and flag in cluster.beam_args
    assert f"--environment_cache_millis={flink_cluster.ENVIRONMENT_CACHE_MS}" in args
    # Declared, so the Python FlinkRunner sends it to the job server instead of dropping it.
    sent = PipelineOptions(args).get_all_options(drop_default=True)
    assert sent["pipeline_resources_detector_factory_class"] == flink_cluster.NO_STAGING_FACTORY
    # Classes resolve from the TaskManagers' classpath first, whether or not a job ships jars.
    conf = dict(line.split(": ", 1) for line in flink_cluster._flink_conf(flink_cluster.Ports(), 1, 2).splitlines())
    assert conf["classloader.resolve-order"] == "parent-first"


def test_a_machine_without_the_jars_is_told_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(flink_cluster.FlinkUnavailable, match=r"missing: run `make flink-setup` \(it needs Java 17"):
        flink_cluster.classpath(str(tmp_path / "classpath.txt"))
    (tmp_path / "classpath.txt").write_text(str(tmp_path / "gone.jar"))
    with pytest.raises(flink_cluster.FlinkUnavailable, match="1 jars of .* are gone"):
        flink_cluster.classpath(str(tmp_path / "classpath.txt"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no java
    with pytest.raises(flink_cluster.FlinkUnavailable, match="no `java` on PATH"):
        flink_cluster.classpath(str(tmp_path / "classpath.txt"))
    out = subprocess.run([sys.executable, "-m", "tfx_bert.flink_cluster", "up", f"--state-dir={tmp_path}"],
                         capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert out.returncode == 2 and "error: no `java` on PATH" in out.stderr


def _run_logged(command: list[str], log: Path, timeout: int) -> int:
    with open(log, "w") as out:
        return subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode


def run_every_beam_step_on_flink(root: str) -> dict:
    """Every Beam step on a Flink cluster (``tfx-bert flink run --isolated``), then on the
    DirectRunner, from the same inputs: {"flink" / "direct": exit code (their logs are
    ``flink.log`` / ``direct.log`` under ``root``), "report": the cluster's report}, or {"setup":
    what ``make flink-setup`` said} where the jars were missing and could not be fetched (it needs
    a Java 17 JDK and Maven). A background job (``flink_runs`` in conftest.py): it needs nothing
    from the session and waits on the cluster most of its time."""
    from tests import flink_steps

    root = Path(root)
    if not os.path.exists(flink_cluster.CLASSPATH_FILE):
        setup = make_setup("flink-setup")
        if setup.returncode:
            return {"setup": (setup.stdout + setup.stderr)[-2000:]}
    flink_steps.write_inputs(root / "in")
    steps = os.path.join(REPO, "tests", "flink_steps.py")
    flink = _run_logged([sys.executable, "-m", "tfx_bert.flink_cluster", "run", "--isolated",
                         f"--state-dir={root / 'cluster'}", f"--report={root / 'report.json'}", "--",
                         sys.executable, steps, str(root / "in"), str(root / "flink")], root / "flink.log", 900)
    direct = _run_logged([sys.executable, steps, str(root / "in"), str(root / "direct"), "--direct"],
                         root / "direct.log", 600)
    report = json.loads((root / "report.json").read_text()) if (root / "report.json").exists() else None
    return {"flink": flink, "direct": direct, "report": report}


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""


@pytest.mark.flink
@pytest.mark.slow
def test_every_beam_step_on_two_taskmanagers_gives_the_direct_runners_outputs(flink_runs):
    from tests import flink_steps

    root, result = flink_runs
    root = Path(root)
    assert "setup" not in result, result.get("setup")
    assert result["flink"] == 0, _tail(root / "flink.log")
    assert result["direct"] == 0, _tail(root / "direct.log")
    jobs = result["report"]
    # One Flink job per Beam step; each ran subtasks on both TaskManagers.
    assert len(jobs["jobs"]) == 7 and sorted(jobs["taskmanagers"]) == ["tm-1", "tm-2"]
    for job in jobs["jobs"]:
        assert job["state"] == "FINISHED"
        assert {tm for tm, n in job["subtasks_per_taskmanager"].items() if n} == {"tm-1", "tm-2"}, job
    assert not list((root / "cluster").glob("pids.json"))  # every process stopped

    on_flink, direct = flink_steps.summary(root / "flink"), flink_steps.summary(root / "direct")
    assert len(direct["examples"]["Split-train"]) > 80 and len(direct["instances"]["Split-train"]) > 500
    assert len(direct["transform"]["Split-eval"]) == 40 and len(direct["inference"]) == 40
    for step in direct:
        assert on_flink[step] == direct[step], step
