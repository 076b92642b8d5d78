"""The DirectRunner's Beam flags: TFX must not repackage itself for every component run."""
import glob
import os
import tempfile

from tfx.utils import dependency_utils

from tfx_bert import beam_options
from tfx_bert import config as config_lib


def _tfx_sdists():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "*", "build", "tfx")))


def test_direct_runner_args_stop_tfx_building_an_ephemeral_package(tmp_path):
    config = config_lib.load_config(config_lib.DEMO_CONFIG, [f"work_dir={tmp_path}"])
    args = beam_options.pipeline_args(config)
    assert args[:2] == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]  # demo.yaml's mode
    before = _tfx_sdists()
    # What every BaseBeamExecutor does with its beam_pipeline_args.
    assert dependency_utils.make_beam_dependency_flags(list(args)) == args
    assert _tfx_sdists() == before


def test_direct_runner_args_keep_dependencies_the_user_named():
    for flag in ("--extra_package=/pkgs/x.tar.gz", "--setup_file=/src/setup.py",
                 "--sdk_container_image=gcr.io/p/beam:1"):
        args = ["--direct_num_workers=2", flag]
        assert beam_options.direct_runner_args(args) == args
    added = beam_options.direct_runner_args(["--direct_num_workers=2"])
    assert added[0] == "--direct_num_workers=2"
    assert added[1].startswith("--sdk_container_image=apache/beam_python")


def test_auto_mode_runs_small_inputs_in_process_and_large_or_unknown_ones_in_workers(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}"])
    assert config.beam.direct_running_mode == "auto"
    (tmp_path / "data.csv").write_text("text,label\n" + "a,1\n" * 1000)
    size = beam_options.input_size([str(tmp_path / "*.csv")], 2**30)
    assert size == (tmp_path / "data.csv").stat().st_size
    assert beam_options.input_size([str(tmp_path)], 100) >= 100  # directories walked, counting stops early
    assert beam_options.pipeline_args(config, input_bytes=size)[:2] == [
        "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    assert beam_options.pipeline_args(config, input_bytes=10 * 2**30)[:2] == [
        "--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    assert beam_options.pipeline_args(config)[:2] == [  # unknown size (compiled for Kubeflow)
        "--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    mine = config_lib.load_config(overrides=["beam_pipeline_args=--direct_running_mode=multi_threading"])
    assert beam_options.pipeline_args(mine, input_bytes=size)[0] == "--direct_running_mode=multi_threading"


def test_direct_runner_pipelines_run_on_the_fn_api_runner_without_trying_prism(tmp_path, caplog):
    """Beam's DirectRunner would first try the PrismRunner (a download from GitHub at run time);
    the flags keep every component on the FnApiRunner, online or not."""
    import logging

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    config = config_lib.load_config(config_lib.DEMO_CONFIG, [f"work_dir={tmp_path}"])
    with caplog.at_level(logging.INFO, logger="apache_beam.runners.direct.direct_runner"):
        with beam.Pipeline(options=PipelineOptions(beam_options.pipeline_args(config))) as pipeline:
            squares = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * x)
            assert_that(squares, equal_to([1, 4, 9]))
    assert "Prism" not in caplog.text
    with caplog.at_level(logging.INFO, logger="apache_beam.runners.direct.direct_runner"):
        with beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory"])) as pipeline:
            pipeline | beam.Create([1])
    assert "Running pipeline with PrismRunner" in caplog.text  # what the flag prevents
