"""BertTuner's executor: TFX's Tuner executor (``tuner_fn``, best hyperparameters, results),
plus ``trials.json`` beside the results: every trial's values, score, seconds and status, which
TFX's results file leaves out (it keeps completed trials' values and score only)."""
from __future__ import annotations

import json
import os

from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils, standard_component_specs

TRIALS_FILE = "trials.json"


class Executor(tuner_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties):
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("BertTuner runs its trials here; TuneArgs (parallel tuning) is not supported.")
        tuner = tuner_executor.search(input_dict, exec_properties, self._get_tmp_dir(), print_tuning_summary=False)
        tuner_executor.write_best_hyperparameters(tuner, output_dict)
        best = tuner.get_best_hyperparameters()[0].values
        trials = [{"trial_id": t.trial_id, "values": t.hyperparameters.values, "score": t.score,
                   "seconds": t.metrics.get_last_value("seconds") if t.metrics.exists("seconds") else None,
                   "status": str(t.status), "best": t.hyperparameters.values == best}
                  for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
        uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        with open(os.path.join(uri, TRIALS_FILE), "w", encoding="utf-8") as f:
            json.dump({"objective": tuner.oracle.objective.name, "trials": trials, "best": best}, f, indent=2)
