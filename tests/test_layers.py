"""The layering rules, checked on every import statement (not only at a line's start):
tfx_bert/ (the library; its CLI entry point aside) imports no upper layer, models/ imports
neither components/ nor pipeline/, and no component imports another component's executor."""
import ast
import os

import pytest

from tests.helpers import REPO

APP = "tfx_bert_app"


def _imports(folder):
    for root, _, names in os.walk(os.path.join(REPO, folder)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    if isinstance(node, ast.ImportFrom) and node.module:
                        yield os.path.relpath(path, REPO), node.module
                    elif isinstance(node, ast.Import):
                        for alias in node.names:
                            yield os.path.relpath(path, REPO), alias.name


@pytest.mark.parametrize("folder, forbidden", [
    ("tfx_bert", (f"{APP}.",)),
    ("models", (f"{APP}.components", f"{APP}.pipeline", f"{APP}.kubeflow")),
])
def test_lower_layers_do_not_import_upper_ones(folder, forbidden):
    bad = [(path, module) for path, module in _imports(folder)
           if module.startswith(forbidden) and path != os.path.join("tfx_bert", "cli.py")]
    assert bad == []


def test_components_do_not_import_each_others_executors():
    bad = []
    for path, module in _imports("components"):
        parts = module.split(".")
        owner = path.split(os.sep)[1]
        if parts[:2] == [APP, "components"] and len(parts) > 3 and parts[2] != owner:
            bad.append((path, module))
    assert bad == []
