"""Where the config file is: --config, $MONITOR_CONFIG, ./config.yaml, then the config directories."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "MONITOR_CONFIG"
APP_DIR = "topic-monitor"  # the name of its directories under $XDG_CONFIG_HOME and /etc


def config_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a config lives when no path is given: systemd's $CONFIGURATION_DIRECTORY (a colon-separated list,
    set by ConfigurationDirectory=), then $XDG_CONFIG_HOME/topic-monitor (default ~/.config/topic-monitor)."""
    env = os.environ if env is None else env
    dirs = [Path(d) for d in env.get("CONFIGURATION_DIRECTORY", "").split(":") if d]
    xdg = env.get("XDG_CONFIG_HOME") or (str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    if xdg:
        dirs.append(Path(xdg) / APP_DIR)
    return dirs


def default_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `monitor init` writes by default: the first of config_dirs()."""
    dirs = config_dirs(env)
    if not dirs:
        raise ConfigError("no config directory: set XDG_CONFIG_HOME or HOME, or give `monitor init` a DIR")
    return dirs[0]


def config_candidates(explicit: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The config files looked for, in order: --config, $MONITOR_CONFIG, ./config.yaml, the config directories."""
    env = os.environ if env is None else env
    if explicit:
        return [explicit]
    if env.get(CONFIG_ENV):
        return [env[CONFIG_ENV]]
    return [DEFAULT_CONFIG, *(str(d / DEFAULT_CONFIG) for d in config_dirs(env))]


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The config file to read: the first of config_candidates() that exists, else the first of them."""
    candidates = config_candidates(explicit, env)
    return next((c for c in candidates if Path(c).is_file()), candidates[0])
