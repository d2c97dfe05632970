"""topic-monitor: poll news feeds, match them against a watchlist, alert once per story."""

from importlib.metadata import PackageNotFoundError, version

# The one version string is pyproject.toml's; the installed package's metadata carries it here.
try:
    __version__ = version("topic-monitor")
except PackageNotFoundError:  # a source tree run without `pip install`
    __version__ = "0+unknown"
