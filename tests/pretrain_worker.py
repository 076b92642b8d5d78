"""A pretraining run in its own process, for the resume and multi-worker tests.

    python -m tests.pretrain_worker <instances_uri> <out_dir> <train_steps> '<json custom_config>' [base_model]
"""
import json
import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    from tfx_bert_app.models import pretraining

    uri, out, steps, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    fn_args = types.SimpleNamespace(
        custom_config=config, train_files=[os.path.join(uri, "Split-train", "*")],
        eval_files=[os.path.join(uri, "Split-eval", "*")], train_steps=steps, eval_steps=4,
        model_run_dir=os.path.join(out, "run"), serving_model_dir=os.path.join(out, "model"),
        base_model=sys.argv[5] if len(sys.argv) > 5 else None)
    pretraining.run_fn(fn_args)
    print("RESULT", open(os.path.join(out, "run", "eval_metrics.json")).read().replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
