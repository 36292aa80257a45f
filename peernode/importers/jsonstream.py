"""Read JSON records one at a time: a top-level array, or JSON Lines (one value after another).

The standard library has no streaming parser, but ``JSONDecoder.raw_decode`` parses one value
from the middle of a string; feeding it a sliding window of the file keeps memory at one block
plus the record being read, whatever the file size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

_BLOCK = 1 << 16
_SPACE = re.compile(r"[ \t\r\n\ufeff]*")
# Records carry raw control characters often enough (pymarc's test.json does) that refusing
# them would reject real files for no benefit.
_DECODER = json.JSONDecoder(strict=False)


@dataclass(frozen=True)
class JsonValue:
    position: str  # "record 3" in an array, "line 7" in JSON Lines
    value: object


@dataclass(frozen=True)
class JsonProblem:
    position: str
    reason: str
    stopped: bool = False  # nothing after this point was read


class _Window:
    """A sliding window over a text stream, with the line number of any position in it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._line = 1  # line number at self._line_pos
        self._line_pos = 0

    def fill(self) -> bool:
        """Read another block; False at the end of the file."""
        if self.eof:
            return False
        block = self.stream.read(_BLOCK)
        if not block:
            self.eof = True
            return False
        self.line_at(self.pos)  # count the lines being dropped before forgetting them
        self.buf = self.buf[self.pos :] + block
        self._line_pos -= self.pos
        self.pos = 0
        return True

    def skip_space(self) -> bool:
        """Move past white space; False when nothing but white space is left."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return True
            if not self.fill():
                return False

    def peek(self) -> str:
        return self.buf[self.pos]

    def line_at(self, pos: int) -> int:
        if pos >= self._line_pos:
            self._line += self.buf.count("\n", self._line_pos, pos)
        else:
            self._line -= self.buf.count("\n", pos, self._line_pos)
        self._line_pos = pos
        return self._line

    def decode(self) -> tuple[object, str | None]:
        """Decode the value at ``pos``: (value, None), or (None, error text) if it is not JSON."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # An error at the end of the window is only the window being too short.
                near_end = exc.pos >= len(self.buf) - 8 or exc.msg.startswith("Unterminated")
                if near_end and self.fill():
                    continue
                line = self.line_at(exc.pos)
                column = exc.pos - self.buf.rfind("\n", 0, exc.pos)
                return None, f"not valid JSON: {exc.msg} (line {line}, column {column})"
            # A number or literal that ends exactly at the window's end may go on in the file.
            if end == len(self.buf) and not isinstance(value, dict | list) and self.fill():
                continue
            self.pos = end
            return value, None


def iter_json(stream: TextIO) -> Iterator[JsonValue | JsonProblem]:
    """Each value of a top-level array ("record N"), or of a JSON Lines file ("line N").

    In an array a syntax error ends the reading (nothing after it can be trusted to line up);
    in JSON Lines the bad line is reported and reading goes on at the next line.
    """
    window = _Window(stream)
    if not window.skip_space():
        return
    if window.peek() == "[":
        window.pos += 1
        yield from _array(window)
    else:
        yield from _lines(window)


def _array(window: _Window) -> Iterator[JsonValue | JsonProblem]:
    index = 0
    while True:
        if not window.skip_space():
            yield JsonProblem(
                f"record {index + 1}", "the file ends before the closing ']'", stopped=True
            )
            return
        if window.peek() == "]":
            return
        if index:
            if window.peek() != ",":
                line = window.line_at(window.pos)
                yield JsonProblem(
                    f"record {index + 1}",
                    f"not valid JSON: expected ',' or ']' after record {index} (line {line}); "
                    "the rest of the file was not read",
                    stopped=True,
                )
                return
            window.pos += 1
            if not window.skip_space():
                continue  # reported as a missing ']' on the next turn
            if window.peek() == "]":  # tolerate a trailing comma, as many exporters write one
                return
        index += 1
        value, error = window.decode()
        if error is not None:
            yield JsonProblem(
                f"record {index}", f"{error}; the rest of the file was not read", stopped=True
            )
            return
        yield JsonValue(f"record {index}", value)


def _lines(window: _Window) -> Iterator[JsonValue | JsonProblem]:
    while window.skip_space():
        position = f"line {window.line_at(window.pos)}"
        value, error = window.decode()
        if error is None:
            yield JsonValue(position, value)
            continue
        yield JsonProblem(position, error)
        # Go on at the next line: in JSON Lines that is the next record.
        while True:
            newline = window.buf.find("\n", window.pos)
            if newline >= 0:
                window.pos = newline + 1
                break
            window.pos = len(window.buf)
            if not window.fill():
                return
