"""The command line: `monitor` and its commands (main.py), their output (views.py), the label commands (labels.py)."""

from .main import main

__all__ = ["main"]
