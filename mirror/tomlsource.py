"""Load TOML configuration files and report problems as ``file:line: key: message``.

tomllib returns plain dicts without positions, so `TomlSource` re-scans the (already valid)
text to find the line where each key path is written. Nothing here knows a particular
schema: the mirror config and topology files both validate through `validate`.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mirror.errors import ConfigError, Loc, LocatedValueError

M = TypeVar("M", bound=BaseModel)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")
_SCALAR_END = frozenset(",]}#\n")


class _ScanError(Exception):
    """The scanner met text it does not understand; the index stays partial."""


class _KeyScanner:
    """Walks valid TOML once, noting the line where each key path is first written.

    Array-of-tables headers (``[[flows]]``) are counted so their entries get list indexes,
    matching the locations pydantic reports. Inline tables and arrays are indexed too, so a
    bad element of a multi-line array can be found on its own line.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Loc, int] = {}
        self._array_sizes: dict[Loc, int] = {}
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]

    def run(self) -> dict[Loc, int]:
        table: Loc = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            start = self.pos
            if self.text.startswith("[[", start):
                self.pos += 2
                table = self._open_array_table(self._key(), start)
                self._expect("]]")
            elif self.text[start] == "[":
                self.pos += 1
                table = self._resolve(self._key())
                self._record(table, start)
                self._expect("]")
            else:
                loc = table + self._key()
                self._expect("=")
                self._record(loc, start)
                self._value(loc)

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _record(self, loc: Loc, pos: int) -> None:
        line = self._line_at(pos)
        for end in range(1, len(loc) + 1):
            self.lines.setdefault(loc[:end], line)

    def _resolve(self, keys: Loc) -> Loc:
        """Turn a header's keys into a key path, entering the latest entry of each array."""
        loc: Loc = ()
        for key in keys:
            loc += (key,)
            if loc in self._array_sizes:
                loc += (self._array_sizes[loc] - 1,)
        return loc

    def _open_array_table(self, keys: Loc, start: int) -> Loc:
        array = self._resolve(keys[:-1]) + keys[-1:]
        index = self._array_sizes.get(array, 0)
        self._array_sizes[array] = index + 1
        self._record((*array, index), start)
        return (*array, index)

    def _skip_blank(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r" or (char == "\n" and newlines):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip_blank(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise _ScanError(token)
        self.pos += len(token)

    def _key(self) -> Loc:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            start = self.pos
            char = self.text[start : start + 1]
            if char == '"':
                self._skip_basic_string()
                parts.append(tomllib.loads("k = " + self.text[start : self.pos])["k"])
            elif char == "'":
                self._skip_literal_string()
                parts.append(self.text[start + 1 : self.pos - 1])
            else:
                match = _BARE_KEY.match(self.text, start)
                if match is None:
                    raise _ScanError("key")
                parts.append(match.group())
                self.pos = match.end()
            self._skip_blank(newlines=False)
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _value(self, loc: Loc) -> None:
        self._skip_blank(newlines=False)
        text, start = self.text, self.pos
        if text.startswith(('"""', "'''"), start):
            self._skip_multiline_string(text[start : start + 3])
        elif text.startswith('"', start):
            self._skip_basic_string()
        elif text.startswith("'", start):
            self._skip_literal_string()
        elif text.startswith("[", start):
            self._container(loc, "]", keyed=False)
        elif text.startswith("{", start):
            self._container(loc, "}", keyed=True)
        else:
            while self.pos < len(text) and text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _ScanError("value")

    def _container(self, loc: Loc, close: str, *, keyed: bool) -> None:
        """An array (entries indexed 0, 1, ...) or an inline table (entries keyed)."""
        self.pos += 1
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self.text.startswith(close, self.pos):
                self.pos += 1
                return
            start = self.pos
            if keyed:
                entry = loc + self._key()
                self._expect("=")
            else:
                entry = (*loc, index)
            self._record(entry, start)
            self._value(entry)
            self._skip_blank(newlines=True)
            if self.text.startswith(",", self.pos):
                self.pos += 1
                index += 1
            elif not self.text.startswith(close, self.pos):
                raise _ScanError(close)

    def _skip_basic_string(self) -> None:
        text, pos = self.text, self.pos + 1
        while pos < len(text) and text[pos] not in '"\n':
            pos += 2 if text[pos] == "\\" else 1
        self.pos = pos + 1

    def _skip_literal_string(self) -> None:
        end = self.text.find("'", self.pos + 1)
        self.pos = len(self.text) if end < 0 else end + 1

    def _skip_multiline_string(self, delimiter: str) -> None:
        text, pos = self.text, self.pos + 3
        while pos < len(text):
            if delimiter == '"""' and text[pos] == "\\":
                pos += 2
            elif text.startswith(delimiter, pos):
                pos += 3
                # Up to two quotes right before the closing delimiter belong to the string.
                for _ in range(2):
                    if text.startswith(delimiter[0], pos):
                        pos += 1
                break
            else:
                pos += 1
        self.pos = pos


class TomlSource:
    """The text of a parsed TOML file, able to say on which line a key path is written."""

    def __init__(self, text: str) -> None:
        self.text = text
        scanner = _KeyScanner(text)
        # Best effort: on text the scanner does not follow, keep the lines found so far.
        with contextlib.suppress(_ScanError, tomllib.TOMLDecodeError, IndexError):
            scanner.run()
        self._lines = scanner.lines

    def line_of(self, loc: Loc) -> int | None:
        """Line of ``loc``, else of its nearest written ancestor (e.g. its table header)."""
        for end in range(len(loc), 0, -1):
            line = self._lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def load_toml(path: Path) -> tuple[dict[str, Any], TomlSource]:
    """Parse ``path``; any failure is a one-line `ConfigError` naming the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_syntax_error(path, text, str(exc))) from None
    return data, TomlSource(text)


def _describe_syntax_error(path: Path, text: str, message: str) -> str:
    line: int | None = None
    if match := _TOML_POSITION.search(message):
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    elif match := _TOML_AT_END.search(message):
        line = text.rstrip().count("\n") + 1
        message = f"{message[: match.start()]} (at end of file)"
    where = f"{path}:{line}" if line is not None else str(path)
    return f"{where}: invalid TOML: {_lower_first(message)}"


def validate(model_cls: type[M], data: Mapping[str, Any], source: TomlSource, path: Path) -> M:
    """Validate ``data`` as ``model_cls``; errors become one ``file:line: key: message`` each."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        located = [
            (source.line_of(loc), loc, message) for loc, message in _problems(exc, model_cls)
        ]
        # File order reads best; problems whose line is unknown go last.
        located.sort(key=lambda item: item[0] if item[0] is not None else 1 << 62)
        lines = []
        for line, loc, message in located:
            where = f"{path}:{line}" if line is not None else str(path)
            key = format_loc(loc)
            lines.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_model(model_cls: type[M], path: Path) -> M:
    """`load_toml` then `validate`."""
    data, source = load_toml(path)
    return validate(model_cls, data, source, path)


def format_loc(loc: Loc) -> str:
    """``("flows", 0, "topics")`` -> ``flows[0].topics``; odd keys are quoted as in TOML."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out


def _problems(exc: ValidationError, model_cls: type[BaseModel]) -> Iterator[tuple[Loc, str]]:
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, LocatedValueError):
            for sub_loc, message in cause.problems:
                yield loc + sub_loc, message
        elif kind == "extra_forbidden":
            yield loc, _unknown_key(model_cls, loc)
        elif kind == "missing":
            yield loc, "required key is missing"
        elif kind in ("value_error", "assertion_error"):
            yield loc, str(cause) if cause is not None else _lower_first(error["msg"])
        else:
            message = _lower_first(error["msg"])
            value = error.get("input")
            if isinstance(value, str | int | float | bool):
                message += f" (got {_toml_literal(value)})"
            yield loc, message


def _unknown_key(model_cls: type[BaseModel], loc: Loc) -> str:
    key = loc[-1] if loc else ""
    message = f"unknown key {key!r}"
    parent = _model_at(model_cls, loc[:-1])
    if parent is None or not isinstance(key, str):
        return message
    known = list(parent.model_fields)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    return f"{message}; known keys: {', '.join(known)}"


def _model_at(model_cls: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class validating the value at ``loc``, following fields, lists and dicts."""
    current: Any = model_cls
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict and isinstance(part, str):
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        unwraps = origin is typing.Annotated or (
            origin in (typing.Union, types.UnionType) and len(args) == 1
        )
        if unwraps:
            annotation = args[0]
        else:
            return annotation


def _toml_literal(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _lower_first(message: str) -> str:
    return message[:1].lower() + message[1:]
