"""tfx_bert.progress: the console gets one line as each component starts and finishes (with
its time) and the first line of each error; the full INFO log goes to the file."""
import logging

import pytest

from tfx_bert import progress


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_component_lines_and_errors_on_the_console_everything_in_the_file(tmp_path, capsys, restore_logging):
    log_file = tmp_path / "logs" / "run.log"
    progress.install(str(log_file))
    log = logging.getLogger("tfx.orchestration")
    log.info("Component Trainer is running.")
    log.info("an executor detail the console does not need")
    log.info("Component Trainer is finished.")
    log.error("Trainer failed: out of memory\nTraceback (most recent call last): ...")
    log.info("Component %s", object())  # not a component line: nothing on the console

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "▶ Trainer ..."
    assert lines[1].startswith("✔ Trainer finished in ") and lines[1].endswith("s")
    assert lines[2:] == ["✘ Trainer failed: out of memory"]
    written = log_file.read_text()
    assert "an executor detail the console does not need" in written and "Traceback" in written
