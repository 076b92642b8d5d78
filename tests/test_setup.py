"""setup.py: what the distribution installs, and that it takes no name another one owns."""
import os
import subprocess
import sys

from tests.helpers import REPO


def test_a_kubeflow_namespace_package_beside_this_one_still_imports(tmp_path):
    """PyPI's Kubeflow packages (kubeflow-training, kubeflow-katib, ...) install into a PEP 420
    ``kubeflow.*`` namespace; this project's kubeflow/ folder installs as tfx_bert_app.kubeflow,
    so both import in one environment (run outside the checkout, as an installed user would)."""
    site = tmp_path / "site"
    (site / "kubeflow" / "training").mkdir(parents=True)
    (site / "kubeflow" / "training" / "__init__.py").write_text("NAME = 'kubeflow-training'\n")
    code = ("import kubeflow.training, tfx_bert_app.kubeflow.serving_manifests as m, tfx_bert_app.models.encoder, "
            "tfx_bert_app.pipeline.parameters, tfx_bert_app.components.artifacts; "
            "print(kubeflow.training.NAME, m.__name__)")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["kubeflow-training", "tfx_bert_app.kubeflow.serving_manifests"]


def test_no_installed_top_level_name_but_ours():
    """The distribution's top-level packages: tfx_bert (library) and tfx_bert_app (the
    pipeline, components, models and kubeflow folders)."""
    out = subprocess.run([sys.executable, "setup.py", "-q", "--name"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "tfx-bert"
    import runpy

    import setuptools

    seen = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: seen.update(kwargs)
    try:
        runpy.run_path(os.path.join(REPO, "setup.py"))
    finally:
        setuptools.setup = original
    assert {p.split(".")[0] for p in seen["packages"]} == {"tfx_bert", "tfx_bert_app"}
    assert seen["package_dir"]["tfx_bert_app.kubeflow"] == "kubeflow"
