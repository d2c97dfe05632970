"""config.yaml: read once, ${VAR}s expanded, validated into frozen objects.

Every error names the file, the line, the key path and what was expected, e.g.
``config.yaml:14: feeds[2].interval: expected a duration like 5m, got "fast"``.
Only this package and the CLI read ``os.environ``.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .files import CONFIG_ENV, DEFAULT_CONFIG, config_candidates, config_path
from .lines import Lined, LinedList, LineLoader, clean_loc, describe, key_path, line_of, yaml_in_words
from .model import Config, ConsoleChannel, EmailChannel, Example, Feed, LocatedError, Settings, TelegramChannel, Topic

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, env: dict[str, str], loc: tuple[str | int, ...], tree: Any, name: str) -> Any:
    if isinstance(value, Lined):
        return Lined({k: _expand(v, env, (*loc, k), tree, name) for k, v in value.items()}, value.lines, value.line)
    if isinstance(value, LinedList):
        return LinedList([_expand(v, env, (*loc, i), tree, name) for i, v in enumerate(value)], value.lines, value.line)
    if isinstance(value, str) and "${" in value:

        def replace(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in env and env[var] != "":
                return env[var]
            if default is not None:
                return default
            raise ConfigError(
                f"{name}:{line_of(tree, loc)}: {key_path(loc)}: environment variable {var} is not set "
                f"(set it, or write ${{{var}:-default}})"
            )

        return _VAR.sub(replace, value)
    return value


def load(path: str | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise ConfigError with file:line on any problem."""
    environ = dict(os.environ) if env is None else env
    candidates = config_candidates(path, os.environ)
    path = config_path(path, os.environ)
    name = path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if len(candidates) > 1:
            raise ConfigError(
                f"{path}: no such file, nor {', '.join(candidates[1:])}; write one with `monitor init`, "
                f"or use --config PATH or set {CONFIG_ENV}"
            ) from exc
        raise ConfigError(f"{path}: no such file (use --config PATH or set {CONFIG_ENV})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return loads(text, name=name, env=environ)


def loads(text: str, *, name: str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Validate config text; `name` is the file name shown in errors and the base for relative paths."""
    env = {} if env is None else env
    try:
        loader = LineLoader(text)
        loader.name = name
        try:
            tree = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{name}:{line}: not valid YAML: {yaml_in_words(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from exc
    if tree is None:
        tree = Lined({}, {}, 1)
    if not isinstance(tree, dict):
        raise ConfigError(f"{name}:1: expected a mapping with settings, channels, feeds, topics")
    tree = _with_state_directory(_expand(tree, env, (), tree, name), env)
    try:
        config = Config.model_validate({**tree, "path": name})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            ctx = error.get("ctx") or {}
            located = ctx.get("error")
            if isinstance(located, LocatedError):
                loc, message = located.loc, located.message
            else:
                loc, message = clean_loc(tuple(error["loc"]), tree), describe(error)
                if error["type"] == "extra_forbidden":
                    message += _nearest_key(loc, tree)
            lines.append(f"{name}:{line_of(tree, loc)}: {key_path(loc)}: {message}")
        raise ConfigError("\n".join(dict.fromkeys(lines))) from exc
    return config.model_copy(update={"example_texts": _read_examples(config, tree, name)})


def _with_state_directory(tree: Any, env: Mapping[str, str]) -> Any:
    """settings.data_dir defaults to systemd's $STATE_DIRECTORY (StateDirectory=) when it is set and the file
    names none: the unit's state directory is the one place a DynamicUser service may write."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    settings = tree.get("settings")
    if not state or (not isinstance(settings, dict) and settings is not None) or "data_dir" in (settings or {}):
        return tree
    lines = getattr(settings, "lines", {})
    line = getattr(settings, "line", tree.line)
    new = Lined({**(settings or {}), "data_dir": state}, {**lines, "data_dir": line}, line)
    return Lined({**tree, "settings": new}, {"settings": line, **tree.lines}, tree.line)


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]


def _nearest_key(loc: tuple[str | int, ...], tree: Any) -> str:
    """ "; did you mean threshold?" for a misspelt key, or the keys allowed there when none is near."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    parent = loc[:-1]
    model: type[BaseModel] | None = None
    if parent == ():
        model = Config
    elif parent == ("settings",):
        model = Settings
    elif len(parent) == 2 and parent[0] == "feeds":
        model = Feed
    elif len(parent) == 2 and parent[0] == "topics":
        model = Topic
    elif len(parent) == 4 and parent[0] == "topics" and parent[2] == "examples":
        model = Example
    elif len(parent) == 2 and parent[0] == "channels":
        node = tree.get("channels", {}).get(parent[1]) if isinstance(tree.get("channels"), dict) else None
        kind = node.get("type") if isinstance(node, dict) else None
        kinds: dict[str, type[BaseModel]] = {"console": ConsoleChannel, "telegram": TelegramChannel,
                                             "email": EmailChannel}  # fmt: skip
        model = kinds.get(str(kind))
    if model is None:
        return ""
    keys = _keys_of(model)
    near = difflib.get_close_matches(loc[-1], keys, n=1, cutoff=0.6)
    if near:
        return f"; did you mean {near[0]}?"
    return f"; expected one of: {', '.join(keys)}"


def _read_examples(config: Config, tree: Any, name: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each topic's examples as (title, text): files are 'title, blank line, text'."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for i, topic in enumerate(config.topics):
        texts: list[tuple[str, str]] = []
        for j, example in enumerate(topic.examples):
            if isinstance(example, Example):
                texts.append((example.title, example.text))
                continue
            pattern = example if os.path.isabs(example) else str(config.base_dir / example)
            paths = sorted(glob.glob(pattern))
            if not paths:
                loc = ("topics", i, "examples", j)
                raise ConfigError(f'{name}:{line_of(tree, loc)}: {key_path(loc)}: no file matches "{example}"')
            for file in paths:
                try:
                    raw = Path(file).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    loc = ("topics", i, "examples", j)
                    where = f"{name}:{line_of(tree, loc)}: {key_path(loc)}"
                    raise ConfigError(f"{where}: cannot read {file}: {exc}") from exc
                title, _, body = raw.strip().partition("\n")
                texts.append((title.strip(), body.strip()))
        out[topic.id] = tuple(texts)
    return out
