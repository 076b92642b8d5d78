"""Pretraining Trainer behaviour that needs real processes: resume after a kill,
MultiWorkerMirroredStrategy with two CPU workers on 127.0.0.1 against one worker, and phase two
warm-starting from phase one (the single-worker run serves as phase one)."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import portpicker
import pytest

from tests.helpers import REPO, build_pretraining_examples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    return build_pretraining_examples(tmp_path_factory.mktemp("pre"))


def _worker(uri, out, steps, config, env=None, extra_args=(), **kw):
    return subprocess.Popen([sys.executable, "-m", "tests.pretrain_worker", uri, str(out), str(steps), json.dumps(config),
                             *extra_args],
                            cwd=REPO, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _result(output):
    return json.loads(output.split("RESULT", 1)[1])


_SINGLE = {"model_size": "tiny", "batch_size": 16, "warmup_steps": 5, "max_predictions_per_seq": 5,
           "dropout": 0.0, "learning_rate": 2e-3}


@pytest.fixture(scope="module")
def single_worker_run(instances, tmp_path_factory):
    """One worker, 60 steps: the multi-worker test's reference and the phase-two test's phase one."""
    out = tmp_path_factory.mktemp("single")
    single = _worker(instances.uri, out, 60, _SINGLE)
    output, _ = single.communicate(timeout=600)
    assert single.returncode == 0, output[-3000:]
    return out, output


def _committed_checkpoint_step(checkpoint_root) -> int:
    """The step of the checkpoint the manager's state file names: a checkpoint counts only once
    that file is rewritten, after its index and data files (a kill between the two leaves the
    previous one current, and resuming from it is right)."""
    states = glob.glob(str(checkpoint_root / "*" / "checkpoint"))
    if not states:
        return 0
    with open(states[0]) as state:
        first_line = state.readline()  # model_checkpoint_path: "ckpt-50"
    return int(first_line.rsplit("-", 1)[1].strip().strip('"'))


def test_killed_trainer_resumes_from_last_checkpoint(instances, tmp_path):
    config = {"model_size": "tiny", "batch_size": 16, "warmup_steps": 10, "max_predictions_per_seq": 5,
              "checkpoint_dir": str(tmp_path / "ckpt"), "checkpoint_every": 25}
    first = _worker(instances.uri, tmp_path / "a", 150, config)
    deadline = time.time() + 300
    while _committed_checkpoint_step(tmp_path / "ckpt") < 50:
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "no checkpoint at step 50 within 300s"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # for real: no cleanup, no final save
    first.wait()
    committed = _committed_checkpoint_step(tmp_path / "ckpt")
    assert 50 <= committed < 150
    second = _worker(instances.uri, tmp_path / "a", 150, config)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output[-3000:]
    resumed_at = int(output.split(" at step ")[1].split()[0])
    assert resumed_at == committed
    assert _result(output)["steps"] == 150  # the step counter continued, not restarted
    assert os.listdir(tmp_path / "ckpt") == []  # removed once the encoder artifact is written


def test_multi_worker_matches_single_worker(instances, single_worker_run, tmp_path):
    """Two workers x global batch 16 (8 each) vs one worker x 16, same steps: the model must
    end up alike (dynamic masking draws different masks, hence a tolerance)."""
    out_single = single_worker_run[1]

    ports = [portpicker.pick_unused_port() for _ in range(2)]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    multi_config = dict(_SINGLE, distribution="multi_worker")
    workers = [
        _worker(instances.uri, tmp_path / f"w{i}", 60, multi_config,
                env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
    assert "on 2 replica(s)" in outputs[0]
    single_m, multi_m = _result(out_single), _result(outputs[0])
    assert multi_m["steps"] == single_m["steps"] == 60
    assert abs(multi_m["mlm_loss"] - single_m["mlm_loss"]) < 0.25 * single_m["mlm_loss"], (multi_m, single_m)
    assert abs(multi_m["nsp_loss"] - single_m["nsp_loss"]) < 0.25 * single_m["nsp_loss"], (multi_m, single_m)


def test_phase_two_starts_from_phase_one_weights(single_worker_run, tmp_path):
    """Phase 2 (longer sequences) warm-starts from phase 1's whole model: with a zero learning
    rate its encoder is phase 1's, and the longer sequences run through it."""
    import keras_hub
    import numpy as np

    long_instances = build_pretraining_examples(tmp_path / "long", max_seq_length=64)
    phase_one = single_worker_run[0] / "model"
    config = dict(_SINGLE, batch_size=8, learning_rate=0.0, max_predictions_per_seq=10)
    second = _worker(long_instances.uri, tmp_path / "p2", 3, config, extra_args=[str(phase_one)])
    out2, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out2[-3000:]
    assert "[train] continuing from" in out2 and "seq 64" in out2
    p1 = keras_hub.models.BertBackbone.from_preset(str(phase_one))
    p2 = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "p2" / "model"))
    for a, b in zip(p1.weights, p2.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
