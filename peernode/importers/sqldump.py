"""Read the rows out of a MySQL dump (mysqldump, phpMyAdmin) without a MySQL server.

Only what dumps contain is understood: ``INSERT``/``REPLACE`` with or without a column list and
with any number of row tuples, and ``CREATE TABLE`` for the column order of inserts that have no
column list. Everything else (``SET``, ``LOCK TABLES``, ``/*!40101 ... */``) is skipped. Values
are quoted strings (backslash escapes and doubled quotes), numbers, ``NULL`` and hex literals;
an expression such as ``NOW()`` reads as NULL, which is all an importer needs of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

SqlValue = str | int | float | None

_BLOCK = 1 << 16
_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
    | (?P<str>'(?:[^'\\]++|\\.|'')*+'|"(?:[^"\\]++|\\.|"")*+")
    | (?P<ident>`(?:[^`]++|``)*+`)
    | (?P<hex>0x[0-9A-Fa-f]+(?![\w$])|[xX]'[0-9A-Fa-f]*')
    | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w$]))
    | (?P<word>[A-Za-z0-9_$]+)
    | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# A row tuple of plain literals, the shape of nearly every row in a dump, is matched whole and
# its values split with one more regex: about four times faster than token by token. Rows with
# anything else (comments, hex, nested expressions) fall back to the token path.
_LITERAL = (
    r"'(?:[^'\\]++|\\.|'')*+'"
    r'|"(?:[^"\\]++|\\.|"")*+"'
    r"|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w$(])"
    r"|(?i:NULL|TRUE|FALSE|DEFAULT|CURRENT_TIMESTAMP)(?![\w$(])"
    r"|[A-Za-z_][\w$]*\s*\((?:[^()'\"]|\([^()'\"]*\))*\)"  # NOW(), DATE(NOW()): read as NULL
)
_SIMPLE_ROW = re.compile(rf"\s*\(\s*(?:(?:{_LITERAL})\s*,\s*)*+(?:{_LITERAL})\s*\)", re.DOTALL)
_ROW_VALUE = re.compile(rf"({_LITERAL})\s*([,)])\s*", re.DOTALL)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
_UNESCAPE = {"'": re.compile(r"\\(.)|''", re.DOTALL), '"': re.compile(r'\\(.)|""', re.DOTALL)}


@dataclass(frozen=True)
class Row:
    """One row tuple of an INSERT; ``columns`` is None when the statement lists none."""

    table: str
    columns: tuple[str, ...] | None
    values: tuple[SqlValue, ...]
    line: int


@dataclass(frozen=True)
class TableColumns:
    """The column order of a table, from its CREATE TABLE."""

    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class SqlProblem:
    line: int
    reason: str
    stopped: bool = False  # nothing after this point was read


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


class _SyntaxError(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Fatal(_SyntaxError):
    """Nothing after this point can be tokenised reliably (an unterminated string)."""


class _Lexer:
    """Tokens from a text stream read a block at a time, comments and white space dropped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1
        self._peeked: _Token | None = None

    def _fill(self) -> bool:
        if self.eof:
            return False
        block = self.stream.read(_BLOCK)
        if not block:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + block
        self.pos = 0
        return True

    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._read()
        return self._peeked

    def next(self) -> _Token:
        token = self.peek()
        self._peeked = None
        return token

    def simple_row(self) -> tuple[tuple[SqlValue, ...], int] | None:
        """The next row tuple, if it is all plain literals: (values, line of its "(")."""
        if self._peeked is not None:
            return None
        while len(self.buf) - self.pos < _BLOCK and self._fill():
            pass  # have a whole row of ordinary size in the window
        match = _SIMPLE_ROW.match(self.buf, self.pos)
        if match is None:
            return None
        opening = self.buf.index("(", self.pos)
        line = self.line + self.buf.count("\n", self.pos, opening)
        values: list[SqlValue] = []
        at = opening + 1
        while True:
            while self.buf[at].isspace():
                at += 1
            value = _ROW_VALUE.match(self.buf, at)
            assert value is not None  # the whole row matched _SIMPLE_ROW
            values.append(_literal(value.group(1)))
            at = value.end()
            if value.group(2) == ")":
                break
        self.line += self.buf.count("\n", self.pos, match.end())
        self.pos = match.end()
        return tuple(values), line

    def _read(self) -> _Token:
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return _Token("end", "", self.line)
            match = _TOKEN.match(self.buf, self.pos)
            assert match is not None  # "punct" matches any character
            kind = match.lastgroup or "punct"
            opener = self.buf[self.pos]
            closed = kind in ("str", "ident") or opener not in "'\"`"
            if self.buf.startswith("/*", self.pos) and kind != "comment":
                closed = False
            # A token that reaches the end of the window may go on in the next block.
            if (not closed or match.end() == len(self.buf)) and self._fill():
                continue
            if not closed:
                what = "comment" if opener == "/" else "quoted text"
                raise _Fatal(self.line, f"unterminated {what} starting at line {self.line}")
            text = match.group()
            self.pos = match.end()
            line = self.line
            if kind in ("space", "comment", "str", "ident"):
                self.line += text.count("\n")
            if kind not in ("space", "comment"):
                return _Token(kind, text, line)


def iter_dump(
    stream: TextIO, tables: frozenset[str] | None = None
) -> Iterator[Row | TableColumns | SqlProblem]:
    """Rows (of ``tables`` only, if given) and table layouts, in file order.

    A statement that cannot be parsed is reported and skipped up to its closing ``;``.
    """
    lexer = _Lexer(stream)
    while True:
        try:
            token = lexer.next()
            if token.kind == "end":
                return
            keyword = token.text.upper() if token.kind == "word" else ""
            if keyword in ("INSERT", "REPLACE"):
                yield from _insert(lexer, tables)
            elif keyword == "CREATE":
                yield from _create(lexer)
            elif token.text != ";":
                _skip_statement(lexer)
        except _Fatal as exc:
            yield SqlProblem(
                exc.line, f"{exc.reason}; the rest of the file was not read", stopped=True
            )
            return
        except _SyntaxError as exc:
            yield SqlProblem(exc.line, exc.reason)
            try:
                _skip_statement(lexer)
            except _Fatal as fatal:
                yield SqlProblem(
                    fatal.line, f"{fatal.reason}; the rest of the file was not read", stopped=True
                )
                return


def _skip_statement(lexer: _Lexer) -> None:
    while True:
        token = lexer.next()
        if token.kind == "end" or token.text == ";":
            return


def _expect(lexer: _Lexer, text: str, what: str) -> _Token:
    token = lexer.next()
    if token.text != text:
        raise _SyntaxError(token.line, f"expected {text!r} {what}, found {_show(token)}")
    return token


def _show(token: _Token) -> str:
    return "the end of the file" if token.kind == "end" else repr(token.text[:30])


def _name(lexer: _Lexer) -> str:
    """A possibly qualified name (db.`table`); its last part, lower-cased."""
    name = ""
    while True:
        token = lexer.next()
        if token.kind == "ident":
            name = token.text[1:-1].replace("``", "`")
        elif token.kind == "word":
            name = token.text
        else:
            raise _SyntaxError(token.line, f"expected a name, found {_show(token)}")
        if lexer.peek().text != ".":
            return name.lower()
        lexer.next()


def _insert(lexer: _Lexer, tables: frozenset[str] | None) -> Iterator[Row]:
    token = lexer.peek()
    while token.kind == "word" and token.text.upper() in (
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "IGNORE",
        "INTO",
    ):
        lexer.next()
        token = lexer.peek()
    table = _name(lexer)
    columns: tuple[str, ...] | None = None
    if lexer.peek().text == "(":
        lexer.next()
        names = [_name(lexer)]
        while lexer.peek().text == ",":
            lexer.next()
            names.append(_name(lexer))
        _expect(lexer, ")", "after the column list")
        columns = tuple(names)
    token = lexer.next()
    if token.kind != "word" or token.text.upper() not in ("VALUES", "VALUE"):
        # INSERT ... SELECT / SET: no literal rows to read.
        if token.text != ";":
            _skip_statement(lexer)
        return
    if tables is not None and table not in tables:
        _skip_statement(lexer)  # still tokenised, so a ';' inside a string cannot end it early
        return
    while True:
        simple = lexer.simple_row()
        if simple is not None:
            yield Row(table, columns, *simple)
        else:
            start = _expect(lexer, "(", "to open a row of values")
            values = [_value(lexer)]
            while True:
                token = lexer.next()
                if token.text == ")":
                    break
                if token.text != ",":
                    raise _SyntaxError(
                        token.line,
                        f"expected ',' or ')' in a row of {table}, found {_show(token)}",
                    )
                values.append(_value(lexer))
            yield Row(table, columns, tuple(values), start.line)
        token = lexer.next()
        if token.text == ",":
            continue
        if token.text != ";" and token.kind != "end":
            _skip_statement(lexer)  # ON DUPLICATE KEY UPDATE ...
        return


def _literal(text: str) -> SqlValue:
    """A string, number or NULL literal as matched by the token or row regexes."""
    first = text[0]
    if first in "'\"":
        return _unquote(text)
    if first.isdigit() or first in "+-.":
        return float(text) if any(c in text for c in ".eE") else int(text)
    keyword = text.upper()
    return 1 if keyword == "TRUE" else 0 if keyword == "FALSE" else None


def _value(lexer: _Lexer) -> SqlValue:
    token = lexer.next()
    if token.kind in ("str", "num"):
        return _literal(token.text)
    if token.kind == "hex":
        digits = token.text[2:-1] if token.text[1] == "'" else token.text[2:]
        if len(digits) % 2:
            digits = "0" + digits
        return bytes.fromhex(digits).decode("utf-8", "replace")
    if token.kind == "word":
        keyword = token.text.upper()
        following = lexer.peek()
        if following.kind == "str" and (keyword == "N" or keyword.startswith("_")):
            lexer.next()  # a character-set introducer: N'...', _utf8mb4'...'
            return _unquote(following.text)
        if following.text == "(":
            _skip_group(lexer)  # a function call such as NOW() or DATE(NOW())
            return None
        if keyword == "TRUE":
            return 1
        if keyword == "FALSE":
            return 0
        return None  # NULL, DEFAULT, CURRENT_TIMESTAMP, ...
    if token.text in "+-" and lexer.peek().kind == "num":
        number = _value(lexer)
        return -number if token.text == "-" and isinstance(number, int | float) else number
    if token.text == "(":
        _skip_group(lexer, opened=True)
        return None
    raise _SyntaxError(token.line, f"expected a value, found {_show(token)}")


def _skip_group(lexer: _Lexer, *, opened: bool = False) -> None:
    depth = 1 if opened else 0
    while True:
        token = lexer.next()
        if token.kind == "end" or token.text == ";":
            raise _SyntaxError(token.line, "unbalanced parentheses in a value")
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                return


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1]
    if "\\" not in body and quote * 2 not in body:
        return body

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char is None:
            return quote
        # MySQL keeps the backslash of \% and \_ (they are LIKE escapes) and drops it elsewhere.
        return _ESCAPES.get(char, "\\" + char if char in "%_" else char)

    return _UNESCAPE[quote].sub(replace, body)


_NOT_COLUMNS = frozenset(
    ("PRIMARY", "KEY", "UNIQUE", "INDEX", "CONSTRAINT", "FOREIGN", "FULLTEXT", "SPATIAL", "CHECK")
)


def _create(lexer: _Lexer) -> Iterator[TableColumns]:
    token = lexer.next()
    if token.kind == "word" and token.text.upper() == "TEMPORARY":
        token = lexer.next()
    if token.kind != "word" or token.text.upper() != "TABLE":
        if token.text != ";":
            _skip_statement(lexer)
        return
    if lexer.peek().kind == "word" and lexer.peek().text.upper() == "IF":
        for _ in range(3):  # IF NOT EXISTS
            lexer.next()
    table = _name(lexer)
    if lexer.next().text != "(":  # CREATE TABLE ... LIKE / AS SELECT
        _skip_statement(lexer)
        return
    columns: list[str] = []
    depth = 1
    at_item_start = True
    while depth:
        token = lexer.next()
        if token.kind == "end":
            raise _SyntaxError(token.line, f"CREATE TABLE {table} is not closed")
        if at_item_start and depth == 1:
            if token.kind == "ident":
                columns.append(token.text[1:-1].replace("``", "`").lower())
            elif token.kind == "word" and token.text.upper() not in _NOT_COLUMNS:
                columns.append(token.text.lower())
        at_item_start = False
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.text == "," and depth == 1:
            at_item_start = True
    _skip_statement(lexer)
    yield TableColumns(table, tuple(columns))
