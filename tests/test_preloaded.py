import os
import sys

from tfx_bert import preloaded

# Prints whether ``decimal`` (preloaded; this module does not import it) was there when it
# started, what an earlier process set, and its environment; then fails or exits with argv[1].
PROBE = """import json, os, sys
print("loaded", "decimal" in sys.modules, json.__dict__.get("_probe_mark"), os.environ.get("PROBE"))
json._probe_mark = "set by an earlier process"  # a process's own change: the next must not see it
if sys.argv[1] == "fail":
    raise RuntimeError("the probe failed on purpose")
sys.exit(int(sys.argv[1]))
"""


def test_each_process_has_the_preloaded_modules_and_none_of_its_predecessors_state(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log = tmp_path / "log.txt"
    assert preloaded.run_module("preload_probe", ["4"], str(log), ("decimal",), dict(os.environ, PROBE="a"),
                                str(tmp_path)) == 4
    assert preloaded.run_module("preload_probe", ["4"], str(log), ("decimal",), None, str(tmp_path)) == 4
    # (the server is this test process's: in a session where another test started it first, it
    # has that test's modules)
    loaded = "decimal" in preloaded.server_modules()
    assert preloaded.server_modules()
    lines = log.read_text().splitlines()
    assert lines == [f"loaded {loaded} None a", f"loaded {loaded} None {os.environ.get('PROBE')}"]


def test_an_uncaught_exception_exits_1_with_its_traceback_in_the_log(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log = tmp_path / "log.txt"
    assert preloaded.run_module("preload_probe", ["fail"], str(log), ("decimal",), cwd=str(tmp_path)) == 1
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: the probe failed on purpose" in text
    assert sys.modules.get("preload_probe") is None  # nothing ran in this process
