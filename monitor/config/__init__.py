"""config.yaml: parsed once into frozen, validated objects (load.py), by the schema of model.py."""

from ..errors import ConfigError
from .files import APP_DIR, CONFIG_ENV, DEFAULT_CONFIG, config_candidates, config_dirs, config_path, default_config_dir
from .lines import yaml_in_words
from .load import load, loads
from .model import Channel, Config, ConsoleChannel, EmailChannel, Example, Feed, Settings, TelegramChannel, Topic
from .values import (
    ClockTime,
    Duration,
    QuietHours,
    UserId,
    format_duration,
    parse_clock,
    parse_duration,
    parse_quiet_hours,
)

__all__ = [
    "APP_DIR",
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "Channel",
    "ClockTime",
    "Config",
    "ConfigError",
    "ConsoleChannel",
    "Duration",
    "EmailChannel",
    "Example",
    "Feed",
    "QuietHours",
    "Settings",
    "TelegramChannel",
    "Topic",
    "UserId",
    "config_candidates",
    "config_dirs",
    "config_path",
    "default_config_dir",
    "format_duration",
    "load",
    "loads",
    "parse_clock",
    "parse_duration",
    "parse_quiet_hours",
    "yaml_in_words",
]
