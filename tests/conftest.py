from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (see below)
import pytest

from .nodes import NodeProc

# Imported at start-up on purpose: hypothesis's pytest plugin otherwise imports it in the
# terminal summary, after the tests, where pytest rewrites it with ast.parse; CPython 3.11.7
# keeps ast's recursion count in process-wide state, and after the thread-based proxy tests
# that parse can fail with "SystemError: AST constructor recursion depth mismatch".


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
