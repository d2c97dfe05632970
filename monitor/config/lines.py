"""YAML that remembers the line of every key, and its errors in words: what `load` reports with file:line."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError


class LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every key and list element."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return Lined(result, lines, node.start_mark.line + 1)


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    return LinedList(items, [child.start_mark.line + 1 for child in node.value], node.start_mark.line + 1)


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class Lined(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


def line_of(tree: Any, loc: tuple[str | int, ...]) -> int:
    """The line of the deepest key in `loc` that the YAML has."""
    line = getattr(tree, "line", 1)
    node = tree
    for part in loc:
        in_map = isinstance(node, Lined) and part in node
        in_list = isinstance(node, LinedList) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_map or in_list):
            break
        line = node.lines[part]
        node = node[part]
    return line


def key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def clean_loc(loc: tuple[str | int, ...], tree: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union-branch markers (e.g. 'telegram', 'function-before[...]') from a loc."""
    clean: list[str | int] = []
    node = tree
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                clean.append(part)
                node = node[part]
            elif part == "from_" and "from" in node:
                clean.append("from")
                node = node["from"]
            elif isinstance(part, str) and (part in {"console", "telegram", "email"} or "[" in part):
                continue
            else:
                clean.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int):
            clean.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and "[" in part:
            continue
        else:
            clean.append(part)
            node = None
    return tuple(clean)


def describe(error: Any) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f'expected type to be one of console, telegram, email, got "{error["ctx"]["tag"]}"'
    if kind == "union_tag_not_found":
        return "expected a `type` key (console, telegram or email)"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        return message
    if message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    shown = f'"{got}"' if isinstance(got, str) else repr(got)
    return f"{message[:1].lower()}{message[1:]}, got {shown}"


# --- YAML syntax errors in words --------------------------------------------------------------------

# The parser's message says where it gave up, in its own terms; these say what the writer most likely did.
_YAML_WORDS = (
    ("found character '\\t'", "a tab character: YAML indents with spaces only"),
    (
        "mapping values are not allowed",
        "a colon followed by a space inside a value: put the value in quotes, "
        "or check that the line is indented like its neighbours",
    ),
    (
        "could not find expected ':'",
        "a key without its colon, or a line that is indented as if it continued the line above",
    ),
    ("expected <block end>", "a line indented differently from the keys or list items beside it"),
    ("did not find expected key", "a line indented differently from the keys beside it, or a list item (-) among keys"),
    (
        "did not find expected '-' indicator",
        "a key among the items of a list (-), or a list item indented differently from the others",
    ),
    ("expected the node content", "a value is missing where one must be (after a [, a { or a comma)"),
    ("expected ',' or ']'", "a list in [ ] that is not closed, or a missing comma between its items"),
    ("expected ',' or '}'", "a mapping in { } that is not closed, or a missing comma between its keys"),
    ("found unexpected end of stream", "a quote that is never closed"),
    ("found unknown escape character", "a backslash inside double quotes: use single quotes, or write \\\\"),
    ("found undefined alias", "a * at the start of a value: put the value in quotes"),
    ("found character '@' that cannot start", "a value starting with @: put it in quotes"),
    ("found character '`' that cannot start", "a value starting with `: put it in quotes"),
    ("found character '%' that cannot start", "a value starting with %: put it in quotes"),
)


def yaml_in_words(exc: yaml.MarkedYAMLError) -> str:
    """What is wrong, then the parser's own message (and where the construct it was reading began)."""
    parser = str(exc.problem or exc)
    started = ""
    if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        started = f", {exc.context} on line {exc.context_mark.line + 1}"
    text = f"{exc.context or ''} {parser}"
    words = next((words for needle, words in _YAML_WORDS if needle in text), None)
    return f"{words} (parser: {parser}{started})" if words else f"{parser}{started}"
