"""The command line: the `monitor` commands (commands.py), their output (views.py), the label commands (labels.py)."""

from .commands import main

__all__ = ["main"]
