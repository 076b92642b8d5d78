"""Java-side Beam options that Beam's Python SDK does not declare.

The Python FlinkRunner sends the job server only the options some ``PipelineOptions`` class in
the process declares (it keeps undeclared flags only with ``--flink_submit_uber_jar``), so a Java
option passed as a plain flag is dropped with a warning. Importing this module declares them.
``beam_options.pipeline_args`` imports it for the Flink and Spark runners.
"""
from apache_beam.options.pipeline_options import PipelineOptions


class JavaResourcesOptions(PipelineOptions):
    """Which jars the Java job server ships with each job."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--pipeline_resources_detector_factory_class", default=None,
            help="Java class (a PipelineResourcesDetector.Factory) that lists the jars the job server stages "
                 "with each job; the local Flink cluster (tfx_bert/flink_cluster.py) names one that stages none.")
