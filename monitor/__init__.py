"""topic-monitor: poll news feeds, match them against a watchlist, alert once per story."""

__version__ = "0.1.0"
