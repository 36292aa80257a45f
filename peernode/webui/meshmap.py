"""The network map: an SVG drawn on the server from the members, peers and liveness tables.

This node sits in the middle; every other library on a circle around it. A solid line is a
direct sync link of ours (green while connected, labelled with the sync lag); a dashed line is
an admission ("A admitted B"), the only links between other libraries this node can know. A
library's dot is green when heard from within three heartbeat intervals, grey otherwise, red
when removed, revoked or blocked. The SVG uses presentation attributes only (no style
attribute, no script), so the page's Content-Security-Policy needs nothing more, and every
name in it is escaped by the template engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .queries import MAX_MAP_NODES, MeshNode

WIDTH = HEIGHT = 640
CENTER = WIDTH / 2
RADIUS = 240


@dataclass
class Dot:
    x: float
    y: float
    name: str
    node_id: str
    state: str  # alive, silent, excluded, self
    label_anchor: str
    label_x: float
    label_y: float
    title: str


@dataclass
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    kind: str  # link-up, link-down, admitted
    label: str = ""
    label_x: float = 0.0
    label_y: float = 0.0


@dataclass
class MeshMap:
    width: int
    height: int
    dots: list[Dot]
    lines: list[Line]
    left_out: int  # libraries beyond MAX_MAP_NODES, listed in the table only


def state_of(node: MeshNode, now_ms: int, alive_ms: int) -> str:
    if node.own:
        return "self"
    if node.status in ("removed", "revoked", "blocked"):
        return "excluded"
    if node.connected or (node.last_seen is not None and now_ms - node.last_seen <= alive_ms):
        return "alive"
    return "silent"


def draw(nodes: list[MeshNode], now_ms: int, alive_ms: int, lag_label: str) -> MeshMap:
    """Positions for ``nodes`` (ours first). ``lag_label`` is a format with ``{n}``, translated
    by the caller, for the entries a peer holds that we lack."""
    own, others = nodes[0], nodes[1 : MAX_MAP_NODES + 1]
    where: dict[bytes, tuple[float, float]] = {own.key: (CENTER, CENTER)}
    dots = [_dot(own, CENTER, CENTER, "self", now_ms)]
    for index, node in enumerate(others):
        angle = -math.pi / 2 + 2 * math.pi * index / max(1, len(others))
        x, y = CENTER + RADIUS * math.cos(angle), CENTER + RADIUS * math.sin(angle)
        where[node.key] = (x, y)
        dots.append(_dot(node, x, y, state_of(node, now_ms, alive_ms), now_ms))
    lines: list[Line] = []
    drawn: set[tuple[bytes, bytes]] = set()
    for node in others:
        if node.peer:
            x, y = where[node.key]
            label = lag_label.format(n=node.behind) if node.behind else ""
            lines.append(
                Line(
                    CENTER,
                    CENTER,
                    x,
                    y,
                    "link-up" if node.connected else "link-down",
                    label,
                    (CENTER + x) / 2,
                    (CENTER + y) / 2 - 4,
                )
            )
            drawn.add(_pair(own.key, node.key))
    for node in [own, *others]:
        for admitter in node.admitted_by:
            pair = _pair(admitter, node.key)
            if admitter == node.key or admitter not in where or pair in drawn:
                continue
            drawn.add(pair)
            (x1, y1), (x2, y2) = where[admitter], where[node.key]
            lines.append(Line(x1, y1, x2, y2, "admitted"))
    return MeshMap(WIDTH, HEIGHT, dots, lines, max(0, len(nodes) - 1 - len(others)))


def _pair(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    return (a, b) if a < b else (b, a)


def _dot(node: MeshNode, x: float, y: float, state: str, now_ms: int) -> Dot:
    # Labels point away from the centre, so they do not cross the lines.
    anchor = "middle" if abs(x - CENTER) < 1 else "start" if x > CENTER else "end"
    dx = 0.0 if anchor == "middle" else (12.0 if anchor == "start" else -12.0)
    dy = 34.0 if node.own else -14.0 if y <= CENTER else 22.0  # ours: below its own dot
    name = node.name[:40]
    return Dot(x, y, name, node.node_id, state, anchor, x + dx, y + dy, node.node_id[:9])
