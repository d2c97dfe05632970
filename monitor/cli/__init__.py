"""The command line: the parser and the smaller commands (commands.py), check and feeds (polling.py), explain and
eval (matching.py), their output (views.py), the label commands (labels.py)."""

from .commands import main

__all__ = ["main"]
