"""The installed library stands alone: no path into this checkout's neighbours or the test caches."""

from __future__ import annotations

import re
from pathlib import Path

import reslab

PACKAGE = Path(reslab.__file__).parent
# the project's shared data folder beside the checkout, and the test suite's extraction cache
FORBIDDEN = re.compile(r"\.\./shared|reslab-tests|tests/conftest")


def test_no_library_module_knows_the_checkouts_neighbours_or_the_test_caches():
    offenders = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if FORBIDDEN.search(line)]  # fmt: skip
    assert not offenders, "library code must not depend on ../shared or the tests:\n" + "\n".join(offenders)
