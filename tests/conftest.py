from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .nodes import NodeProc


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[[str], NodeProc]]:
    """Create initialised nodes in this test's temporary directory; daemons stop afterwards."""
    created: list[NodeProc] = []

    def factory(name: str) -> NodeProc:
        node = NodeProc(tmp_path / name.lower().replace(" ", "-"), name)
        created.append(node)
        return node.init()

    yield factory
    for node in created:
        node.stop()
