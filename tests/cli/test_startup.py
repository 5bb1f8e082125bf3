"""Starting the CLI is cheap: --help and --version import neither torch nor the library's heavy parts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from reslab.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "numpy", "faiss", "cv2", "matplotlib", "PIL") if m in sys.modules)
print(json.dumps(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["train", "--help"], ["data", "verify", "--help"], ["bench", "--help"]])
def test_help_does_not_import_torch(args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    heavy = json.loads(done.stderr.strip().splitlines()[-1])
    assert heavy == [], f"`reslab {' '.join(args)}` imported {heavy}"
    assert "Usage" in done.stdout or "reslab" in done.stdout


def test_version_names_reslab_and_torch():
    from reslab import __version__

    done = subprocess.run([sys.executable, "-m", "reslab", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"reslab {__version__} (torch ")


def test_import_reslab_is_light_and_the_model_api_still_there():
    code = "import sys, reslab; assert 'torch' not in sys.modules; reslab.create_model; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


QUIET_LIBRARIES = """
import logging
from reslab.cli import _setup_logging
_setup_logging()
import faiss  # logs which CPU build it loads, at INFO
logging.getLogger("reslab.anything").info("a reslab line")
"""


def test_library_info_chatter_is_not_shown_but_reslab_info_is():
    # issue 12, defect 7: every `reslab serve` start printed FAISS's nine INFO lines about AVX builds
    done = subprocess.run([sys.executable, "-c", QUIET_LIBRARIES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "faiss" not in done.stderr.lower() and "a reslab line" in done.stderr
