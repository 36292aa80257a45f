"""The reference docs are generated from the code; these fail when someone forgets to regenerate."""

from __future__ import annotations

from dataclasses import fields

from peernode.home import SETTINGS, Config
from tools.docgen import DOCS, OUTPUTS


def test_every_setting_has_a_description() -> None:
    assert sorted(SETTINGS) == sorted(f.name for f in fields(Config))


def test_generated_docs_are_current() -> None:
    for name, render in OUTPUTS.items():
        on_disk = (DOCS / name).read_text("utf-8")
        assert on_disk == render(), f"docs/{name} is stale: run `python -m tools.docgen`"


def test_cli_doc_names_every_command_and_option() -> None:
    import click

    from peernode.cli import cli

    text = (DOCS / "cli.md").read_text("utf-8")

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}"
            assert f"## `{path}`" in text, f"{path} is not documented"
            for param in command.params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("-"):
                        assert opt in text, f"{path} {opt} is not documented"
            if isinstance(command, click.Group):
                walk(command, path)

    walk(cli, "peernode")
