"""A Flink session cluster on 127.0.0.1 for ``beam.runner: flink``: a JobManager, TaskManagers,
Beam's Flink job server and the Python SDK workers, as separate processes.

The Java side comes from Maven Central modules (``flink/pom.xml``; ``make flink-setup`` writes
their classpath to ``.flink/classpath.txt``): ``flink-dist`` and Beam's shaded job-server jars are
not served by the registries these machines reach, so the processes are started the way Flink's
own scripts start them (``StandaloneSessionClusterEntrypoint``, ``TaskManagerRunner`` with the
memory settings ``BashJavaUtils`` derives) and Beam's ``FlinkJobServerDriver``. Each TaskManager
runs Beam's Flink operators; the Python transforms run in SDK worker processes that the
TaskManagers ask ``tfx_bert.flink_workers`` for (EXTERNAL environment: no Docker engine here).

Flink binds every port to 127.0.0.1 as configured. Beam's job server and the Fn API servers it
opens inside the TaskManagers bind every interface (Beam's ``ServerFactory`` listens with
``NettyServerBuilder.forPort``), so ``run(..., isolated=True)`` starts the cluster and the command
in a network namespace of their own (``unshare -rn``), where the only interface is loopback.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSPATH_FILE = os.path.join(REPO, ".flink", "classpath.txt")
SETUP_HINT = "run `make flink-setup` (it needs Java 17, a JDK, and Maven: `java -version`, `javac -version`, `mvn -v`)"

# What Flink 1.19's default configuration passes to every JVM on Java 17 (env.java.opts.all).
JAVA_OPENS = [f"--add-exports={m}=ALL-UNNAMED" for m in (
    "java.base/sun.net.util", "java.rmi/sun.rmi.registry", "java.security.jgss/sun.security.krb5")] + [
    f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect", "java.text",
        "java.time", "java.util", "java.util.concurrent", "java.util.concurrent.atomic",
        "java.util.concurrent.locks")]

LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.file.ref = File
appender.file.name = File
appender.file.type = File
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-40c{1} - %m%n
"""


# Keep a TaskManager's SDK worker between the stages of a job: Beam's default (0) starts a new
# Python worker, TensorFlow imports and all, for every stage; a two-stage job then spent more time
# starting workers than working.
ENVIRONMENT_CACHE_MS = 30000
# Built by `make flink-setup` from flink/src (the last entry of the classpath file): a job names
# its factory, and the job server stages no jars with it. Beam's default stages every jar of the
# job server's classpath (about 160) with every job, 13-14 s of a job's submission here, while
# these TaskManagers run with that same classpath. A 10-element job took 22-33 s with the
# jars and 2.5-4 s without, once its SDK workers were up.
NO_STAGING_JAR = os.path.join(REPO, ".flink", "tfx-bert-flink.jar")
NO_STAGING_FACTORY = "org.tfxbert.flink.NoStagingDetectorFactory"


class FlinkUnavailable(RuntimeError):
    """Java or the cluster's jars are missing on this machine."""


@dataclasses.dataclass(frozen=True)
class Ports:
    rest: int = 8081
    rpc: int = 6123
    job: int = 8099
    artifact: int = 8098
    workers: int = 50000


def classpath(path: str = CLASSPATH_FILE) -> str:
    if shutil.which("java") is None:
        raise FlinkUnavailable(f"no `java` on PATH: the Flink runner needs Java 17; {SETUP_HINT}")
    if not os.path.exists(path):
        raise FlinkUnavailable(f"{path} is missing: {SETUP_HINT}")
    with open(path) as f:
        jars = f.read().strip()
    missing = [j for j in jars.split(os.pathsep) if not os.path.exists(j)]
    if missing:
        raise FlinkUnavailable(f"{len(missing)} jars of {path} are gone (first: {missing[0]}): {SETUP_HINT}")
    return jars


def _flink_conf(ports: Ports, slots: int, parallelism: int) -> str:
    return "\n".join(f"{k}: {v}" for k, v in {
        "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": ports.rpc,
        "jobmanager.bind-host": "127.0.0.1", "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
        "rest.port": ports.rest, "taskmanager.bind-host": "127.0.0.1", "taskmanager.host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": slots, "parallelism.default": parallelism,
        "jobmanager.memory.process.size": "1024m", "taskmanager.memory.process.size": "1536m",
        # Beam's batch stages shuffle through many channels at once: the default network memory
        # (10% of the process) failed a two-TaskManager ExampleGen with "Insufficient number of
        # network buffers: required 512, but only 97 available".
        "taskmanager.memory.network.min": "320m", "taskmanager.memory.network.max": "320m",
        # Beam's classes come from the TaskManagers' own classpath even where a job ships them
        # (child-first, a job staging jars after one that staged none failed with a LinkageError).
        "classloader.resolve-order": "parent-first",
        # Python SDK workers start slowly (TensorFlow imports); Flink's default 10 s heartbeat
        # timeout is fine, but an idle slot must not be returned while a stage waits for one.
        "slot.idle.timeout": 600000, "heartbeat.timeout": 120000,
    }.items()) + "\n"


class LocalFlinkCluster:
    """Start with ``start()`` (or as a context manager), stop with ``stop()``; ``beam_args`` are
    the flags that send a Beam pipeline to it. The processes' ids are written to
    ``state_dir/pids.json`` so that another process (``tfx-bert flink down``) can stop them."""

    def __init__(self, state_dir: str, taskmanagers: int = 2, ports: Ports = Ports(), cp: str | None = None):
        self.state_dir = os.path.abspath(state_dir)
        self.taskmanagers = taskmanagers
        self.ports = ports
        self.cp = cp
        self.pids: dict[str, int] = {}

    @property
    def extra_args(self) -> list[str]:
        """Keep a TaskManager's worker between a job's stages; stage no jars where the cluster
        runs with the factory that allows it (its TaskManagers have the job server's jars)."""
        args = [f"--environment_cache_millis={ENVIRONMENT_CACHE_MS}"]
        if NO_STAGING_JAR in (self.cp or "").split(os.pathsep):
            args.append(f"--pipeline_resources_detector_factory_class={NO_STAGING_FACTORY}")
        return args

    @property
    def config_overrides(self) -> list[str]:
        """The ``beam`` settings that send a pipeline's Beam steps to this cluster."""
        return ["beam.runner=flink", f"beam.job_endpoint=127.0.0.1:{self.ports.job}",
                "beam.environment_type=EXTERNAL", f"beam.environment_config=127.0.0.1:{self.ports.workers}",
                f"beam.parallelism={self.taskmanagers}", f"beam.extra_args={','.join(self.extra_args)}"]

    @property
    def beam_args(self) -> list[str]:
        """The same as Beam flags (what ``beam_options.pipeline_args`` makes of them, less
        ``--setup_file``: these workers run in this environment)."""
        from tfx_bert import beam_java_options  # noqa: F401 (declares the staging flag)

        return ["--runner=FlinkRunner", f"--job_endpoint=127.0.0.1:{self.ports.job}",
                "--environment_type=EXTERNAL", f"--environment_config=127.0.0.1:{self.ports.workers}",
                f"--parallelism={self.taskmanagers}", *self.extra_args]

    # The JobManager and the job server coordinate; they run little code long enough for C2 to
    # pay for itself. C2's compiler threads took 16 and 11 of their 39 and 20 CPU-seconds in a
    # test run (7 small jobs); with the client compiler alone and the serial collector they took
    # 21 and 13 in all. (The TaskManagers keep C2: with C1 alone they took more, not less.)
    COORDINATOR_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

    def _path(self, *parts) -> str:
        return os.path.join(self.state_dir, *parts)

    def _java(self, name: str, main: str, *args: str, jvm: tuple = ()) -> None:
        # The job server ships the jars of its classpath with every job (about 12 s a job here; the
        # TaskManagers have the same jars). A manifest-only classpath jar does not stop it: Beam's
        # ClassGraph-based detector follows the manifest's Class-Path.
        cmd = ["java", *JAVA_OPENS, *jvm, f"-Dlog.file={self._path('log', name + '.log')}",
               f"-Dlog4j.configurationFile={self._path('conf', 'log4j2.properties')}", "-cp", self.cp, main, *args]
        self._spawn(name, cmd)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self._path("log", name + ".out"), "wb") as out:
            self.pids[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True).pid
        with open(self._path("pids.json"), "w") as f:
            json.dump(self.pids, f)

    def _taskmanager_params(self) -> tuple[list[str], list[str]]:
        """The JVM flags and ``-D`` settings Flink's taskmanager.sh gets from BashJavaUtils."""
        out = subprocess.run(["java", "-cp", self.cp, "org.apache.flink.runtime.util.bash.BashJavaUtils",
                              "GET_TM_RESOURCE_PARAMS", "--configDir", self._path("conf")],
                             capture_output=True, text=True, check=True).stdout
        lines = [ln.split(":", 1)[1] for ln in out.splitlines() if ln.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
        return lines[0].split(), lines[1].split()

    def start(self, timeout: float = 180) -> "LocalFlinkCluster":
        self.cp = self.cp or classpath()
        for sub in ("conf", "log", "artifacts"):
            os.makedirs(self._path(sub), exist_ok=True)
        with open(self._path("conf", "flink-conf.yaml"), "w") as f:
            f.write(_flink_conf(self.ports, slots=1, parallelism=self.taskmanagers))
        with open(self._path("conf", "log4j2.properties"), "w") as f:
            f.write(LOG4J)
        try:
            self._java("jobmanager", "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                       "--configDir", self._path("conf"), jvm=("-Xmx512m", *self.COORDINATOR_JVM))
            jvm, settings = self._taskmanager_params()
            for i in range(1, self.taskmanagers + 1):
                self._java(f"taskmanager-{i}", "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                           "--configDir", self._path("conf"), *settings, "-D", f"taskmanager.resource-id=tm-{i}",
                           jvm=tuple(jvm))
            self._java("jobserver", "org.apache.beam.runners.flink.FlinkJobServerDriver",
                       f"--flink-master=127.0.0.1:{self.ports.rest}", "--job-host=127.0.0.1",
                       f"--job-port={self.ports.job}", f"--artifact-port={self.ports.artifact}",
                       "--expansion-port=-1", f"--artifacts-dir={self._path('artifacts')}", jvm=("-Xmx768m", *self.COORDINATOR_JVM))
            self._spawn("workers", [sys.executable, "-m", "tfx_bert.flink_workers",
                                    f"--port={self.ports.workers}", f"--log-dir={self._path('log', 'workers')}"])
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [n for n, pid in self.pids.items() if not _alive(pid)]
            if dead:
                raise RuntimeError(f"the Flink cluster's {dead[0]} exited at start: see {self._path('log', dead[0])}"
                                   ".log / .out")
            try:
                registered = self.rest("/overview")["taskmanagers"]
            except OSError:
                registered = -1
            if registered == self.taskmanagers and all(_listening(p) for p in (
                    self.ports.job, self.ports.artifact, self.ports.workers)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Flink cluster was not up after {timeout:.0f} s ({registered} of "
                                   f"{self.taskmanagers} TaskManagers registered): see {self._path('log')}")
            time.sleep(0.5)

    def rest(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports.rest}{path}", timeout=10) as response:
            return json.load(response)

    def job_report(self) -> list[dict]:
        """Every job the cluster ran: name, state, and how many subtasks each TaskManager ran."""
        report = []
        for job in self.rest("/jobs/overview")["jobs"]:
            per_tm: dict[str, int] = {}
            for vertex in self.rest(f"/jobs/{job['jid']}")["vertices"]:
                for tm in self.rest(f"/jobs/{job['jid']}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]:
                    tm_id = tm.get("taskmanager-id", tm.get("host", "?"))
                    per_tm[tm_id] = per_tm.get(tm_id, 0) + sum(tm.get("status-counts", {}).values())
            report.append({"name": job["name"], "state": job["state"], "subtasks_per_taskmanager": per_tm})
        return report

    def stop(self) -> None:
        stop_pids(self.pids)
        self.pids = {}
        if os.path.exists(self._path("pids.json")):
            os.remove(self._path("pids.json"))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:  # not our child (``flink down`` from another process)
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_pids(pids: dict[str, int], grace: float = 15) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after ``grace`` seconds."""
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in pids.values():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _alive(pid)  # reap


def stop_state_dir(state_dir: str) -> list[str]:
    """Stop the cluster whose ids ``state_dir/pids.json`` holds; returns the names stopped."""
    path = os.path.join(state_dir, "pids.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        pids = json.load(f)
    stop_pids(pids)
    os.remove(path)
    return sorted(pids)


def _loopback_up() -> None:
    """Bring up ``lo`` in a new network namespace (it starts down), as ``ip link set lo up``."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def run(command: list[str], state_dir: str, taskmanagers: int = 2, report: str | None = None,
        isolated: bool = False) -> int:
    """Start a cluster, run ``command`` (its environment gains ``FLINK_CONFIG_OVERRIDES``: the
    ``beam`` settings that send a pipeline to the cluster, one per line, and ``FLINK_BEAM_ARGS``:
    the same as Beam flags), write the job report, stop the cluster;
    returns the command's exit status. ``isolated`` runs all of it in a network namespace of its
    own (``unshare -rn``: nothing outside the namespace can reach any port it opens)."""
    if isolated:
        if shutil.which("unshare") is None:
            raise FlinkUnavailable("`unshare` (util-linux) is needed for an isolated run")
        args = ["unshare", "-rn", "--", sys.executable, "-m", "tfx_bert.flink_cluster", "run", "--in-namespace",
                f"--state-dir={state_dir}", f"--taskmanagers={taskmanagers}"]
        args += [f"--report={report}"] if report else []
        return subprocess.run(args + ["--", *command]).returncode
    cluster = LocalFlinkCluster(state_dir, taskmanagers)
    with cluster:
        env = dict(os.environ, FLINK_BEAM_ARGS=" ".join(cluster.beam_args),
                   FLINK_CONFIG_OVERRIDES="\n".join(cluster.config_overrides))
        code = subprocess.run(command, env=env).returncode
        if report:
            with open(report, "w") as f:
                json.dump({"jobs": cluster.job_report(), "taskmanagers": [
                    tm["id"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]]}, f, indent=1)
    return code


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="tfx-bert flink", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action, help_text in (("up", "start the cluster in the background and print the flags that use it"),
                              ("down", "stop the cluster `up` started"),
                              ("run", "start a cluster, run a command against it (its environment has "
                                      "FLINK_BEAM_ARGS), stop the cluster")):
        p = sub.add_parser(action, help=help_text)
        p.add_argument("--state-dir", default=os.path.join(REPO, ".flink", "cluster"),
                       help="configuration, logs and process ids (default: .flink/cluster)")
        if action != "down":
            p.add_argument("--taskmanagers", type=int, default=2)
        if action == "run":
            p.add_argument("--report", help="write the jobs the cluster ran (and where) to this JSON file")
            p.add_argument("--isolated", action="store_true",
                           help="in a network namespace of its own (unshare -rn), where only loopback exists")
            p.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
            p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            stopped = stop_state_dir(args.state_dir)
            print("stopped: " + ", ".join(stopped) if stopped else f"no cluster recorded in {args.state_dir}")
            return 0
        if args.action == "up":
            cluster = LocalFlinkCluster(args.state_dir, args.taskmanagers).start()
            print(f"Flink {cluster.rest('/overview')['flink-version']} on 127.0.0.1: REST API "
                  f"http://127.0.0.1:{cluster.ports.rest}, {args.taskmanagers} TaskManagers, logs in "
                  f"{cluster.state_dir}/log\nrun pipelines with: "
                  + " ".join(f"--set {o}" for o in cluster.config_overrides) + "\nstop it with: make flink-down")
            return 0
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command after --")
        if args.in_namespace:
            _loopback_up()
        return run(command, args.state_dir, args.taskmanagers, args.report, args.isolated and not args.in_namespace)
    except FlinkUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
