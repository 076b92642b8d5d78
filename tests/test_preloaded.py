import os
import sys

from tfx_bert import preloaded

PROBE = """import json, os, sys
state = json.loads(sys.argv[1])
print("loaded", sorted(k for k in state if k in sys.modules), json.__dict__.get("_probe_mark"), os.environ.get("PROBE"))
json._probe_mark = "set by an earlier process"  # a process's own change: the next must not see it
if state.get("fail"):
    raise RuntimeError("the probe failed on purpose")
sys.exit(state.get("code", 0))
"""


def test_each_process_has_the_preloaded_modules_and_none_of_its_predecessors_state(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log = tmp_path / "log.txt"
    args = '{"decimal": 1, "code": 4}'
    assert preloaded.run_module("preload_probe", [args], str(log), ("decimal",), dict(os.environ, PROBE="a"),
                                str(tmp_path)) == 4
    assert preloaded.run_module("preload_probe", [args], str(log), ("decimal",), None, str(tmp_path)) == 4
    lines = log.read_text().splitlines()
    assert lines == ["loaded ['decimal'] None a", f"loaded ['decimal'] None {os.environ.get('PROBE')}"]


def test_an_uncaught_exception_exits_1_with_its_traceback_in_the_log(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log = tmp_path / "log.txt"
    assert preloaded.run_module("preload_probe", ['{"fail": true}'], str(log), ("decimal",), cwd=str(tmp_path)) == 1
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: the probe failed on purpose" in text
    assert sys.modules.get("preload_probe") is None  # nothing ran in this process
