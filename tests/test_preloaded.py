import json
import os
import sys

from tfx_bert import preloaded

# Writes the modules it found loaded when it started to argv[2]; prints what an earlier process
# set and its environment; then fails or exits with argv[1].
PROBE = """import sys
loaded = sorted(sys.modules)
import json, os
json.dump(loaded, open(sys.argv[2], "w"))
print("probe", json.__dict__.get("_probe_mark"), os.environ.get("PROBE"))
json._probe_mark = "set by an earlier process"  # a process's own change: the next must not see it
if sys.argv[1] == "fail":
    raise RuntimeError("the probe failed on purpose")
sys.exit(int(sys.argv[1]))
"""


def test_each_process_has_the_preloaded_modules_and_none_of_its_predecessors_state(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log, found = tmp_path / "log.txt", tmp_path / "modules.json"
    assert preloaded.run_module("preload_probe", ["4", str(found)], str(log), ("decimal",),
                                dict(os.environ, PROBE="a"), str(tmp_path)) == 4
    assert preloaded.run_module("preload_probe", ["4", str(found)], str(log), ("decimal",), None, str(tmp_path)) == 4
    assert log.read_text().splitlines() == ["probe None a", f"probe None {os.environ.get('PROBE')}"]
    # The server's modules were there before the probe ran a line (this test's "decimal", or the
    # modules of another test that started this process's server first).
    assert preloaded.server_modules() and set(preloaded.server_modules()) <= set(json.loads(found.read_text()))


def test_an_uncaught_exception_exits_1_with_its_traceback_in_the_log(tmp_path):
    (tmp_path / "preload_probe.py").write_text(PROBE)
    log = tmp_path / "log.txt"
    assert preloaded.run_module("preload_probe", ["fail", str(tmp_path / "m.json")], str(log), ("decimal",),
                                cwd=str(tmp_path)) == 1
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: the probe failed on purpose" in text
    assert sys.modules.get("preload_probe") is None  # nothing ran in this process


def test_stderr_can_go_to_its_own_file_niceness_applies_and_a_process_past_its_timeout_is_killed(tmp_path):
    import subprocess
    import time

    import pytest

    (tmp_path / "preload_probe.py").write_text(PROBE)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    assert preloaded.run_module("preload_probe", ["fail", str(tmp_path / "m.json")], str(out), ("decimal",),
                                cwd=str(tmp_path), stderr_path=str(err)) == 1
    assert out.read_text().startswith("probe ") and "Traceback" not in out.read_text()
    assert "RuntimeError: the probe failed on purpose" in err.read_text()
    (tmp_path / "nice_probe.py").write_text("import os\nprint('niceness', os.nice(0), flush=True)\n")
    assert preloaded.run_module("nice_probe", [], str(out), ("decimal",), cwd=str(tmp_path), niceness=3) == 0
    assert f"niceness {os.nice(0) + 3}" in out.read_text()
    (tmp_path / "sleeper.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        preloaded.run_module("sleeper", [], str(out), ("decimal",), cwd=str(tmp_path), timeout=3)
    assert time.monotonic() - started < 30 and "sleeping" in out.read_text()
