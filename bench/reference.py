"""Another checkout's `monitor` package beside this one's, in the same process: the reference of a same-run ratio.

The package is copied to a temporary directory as `monitor_ref` (its imports within the package are relative, so
the copy imports its own modules, not this checkout's) and that directory is put on sys.path while the block runs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME = "monitor_ref"


@contextmanager
def reference_package(checkout: Path) -> Iterator[str]:
    """`checkout`'s monitor/ importable as NAME inside the block; yields NAME."""
    source = checkout / "monitor"
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"{checkout}: no monitor/ package there")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, Path(tmp) / NAME)
        sys.path.insert(0, tmp)
        try:
            yield NAME
        finally:
            sys.path.remove(tmp)
