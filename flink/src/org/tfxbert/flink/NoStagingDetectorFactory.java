package org.tfxbert.flink;

import java.util.Collections;
import java.util.List;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/**
 * Stages no jars with a job. Beam's Flink job server otherwise ships every jar of its own
 * classpath (about 160 here) with every job it submits; the TaskManagers of the local cluster
 * (tfx_bert/flink_cluster.py) run with that same classpath, so the jars are already there.
 * Selected per job with --pipeline_resources_detector_factory_class; a cluster whose
 * TaskManagers lack Beam's classes must not use it.
 */
public class NoStagingDetectorFactory implements PipelineResourcesDetector.Factory {
  /** How Beam instantiates a detector factory named in the options. */
  public static NoStagingDetectorFactory create() {
    return new NoStagingDetectorFactory();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return new NoResources();
  }

  static class NoResources implements PipelineResourcesDetector {
    @Override
    public List<String> detect(ClassLoader classLoader) {
      return Collections.emptyList();
    }
  }
}
