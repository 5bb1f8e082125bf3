"""The package's layering: an area never imports one above it, lazy imports inside functions included.

    models, preprocess, imageio, ... < inference < embeddings < features, search < web, train, cli

Every `import` and `from ... import` of every module is read with `ast` (not executed), so an
import hidden inside a function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import reslab

PACKAGE = Path(reslab.__file__).parent

# area -> the areas it must never import (directly or through a lazy import)
FORBIDDEN = {
    "inference": {"embeddings", "features", "search", "web", "train", "cli", "experiments", "report", "demos"},
    "embeddings": {"features", "search", "web", "train", "cli", "experiments", "report", "demos"},
    "features": {"search", "web", "train", "cli", "experiments", "report", "demos"},
    "search": {"features", "web", "train", "cli", "experiments", "report", "demos"},
    "models": {"inference", "embeddings", "features", "search", "web", "train", "cli"},
}


def area_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "reslab" else None


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the reslab modules that `path` imports anywhere in its body."""
    package = "reslab." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    parent = package.rsplit(".", 1)[0].split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(parent[: len(parent) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from . import classical`
    return {m for m in found if m.startswith("reslab")}


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    source = PACKAGE / "embeddings" / "methods.py"
    modules = imported_modules(source)
    assert "reslab.errors" in modules  # `from ..errors import ...` at the top
    assert "reslab.embeddings.classical" in modules  # `from . import classical` inside a function


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_no_area_imports_one_above_it(area):
    offences = []
    for path in sorted((PACKAGE / area).rglob("*.py")):
        for module in imported_modules(path):
            if area_of(module) in FORBIDDEN[area]:
                offences.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not offences, "\n".join(offences)


def test_importing_the_inference_and_embeddings_layers_loads_no_runtime():
    """The CLI imports these lazily, but a library user's `import` must stay cheap too."""
    code = (
        "import sys, reslab.inference, reslab.embeddings, reslab.inference.auto, reslab.inference.cache; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'cv2', 'faiss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
