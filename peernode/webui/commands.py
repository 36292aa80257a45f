"""`peernode staff ...`: the staff password of the web page (and `init --staff-password-file`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..home import Home
from . import auth


def read_password_file(path: Path) -> str:
    """The password in ``path``: its first line, without the line end."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read the password file {path}: {exc}") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


def store_password(home: Home, password: str) -> None:
    store = home.open_store()
    try:
        auth.set_password(store.conn, password)
    except auth.PasswordError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.conn.close()


@click.group()
def staff() -> None:
    """The staff login of the web page (import, peers, network map, alerts)."""


@staff.command("password")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Read the new password from the first line of this file instead of asking.",
)
@click.pass_context
def password_cmd(ctx: click.Context, password_file: Path | None) -> None:
    """Set (or change) the staff password of the web page. Every open staff session ends."""
    home: Home = ctx.obj
    home.require()
    if password_file is not None:
        password = read_password_file(password_file)
    else:
        password = click.prompt(
            "New staff password", hide_input=True, confirmation_prompt="Repeat it"
        )
    store_password(home, password)
    click.echo(
        f"The staff password is set. Log in at http://{home.config.listen}/staff/login "
        "(from this computer, or wherever the web page is opened)."
    )
