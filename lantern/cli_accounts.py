"""`lantern token` and `lantern user`: workspace API tokens and dashboard logins."""

from __future__ import annotations

import click

from lantern.cli import _echo_json
from lantern.config import get_settings
from lantern.workspaces.models import Workspace


@click.group()
def token() -> None:
    """Workspace API tokens, for scripts using the dashboard API."""


@token.command("create")
@click.option("--workspace", "-w", default="default", show_default=True)
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--json", "as_json", is_flag=True)
def token_create(workspace: str, name: str, as_json: bool) -> None:
    """Create an API token (shown this once only)."""
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.workspaces.service import create_api_token, get_or_create_workspace

    upgrade()
    with session_scope() as session:
        space = get_or_create_workspace(
            session, name=workspace, sensitivity=get_settings().sensitivity
        )
        row, secret = create_api_token(session, workspace=space, name=name)
        data = {"id": row.id, "workspace": workspace, "token": secret}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"API token for workspace {workspace!r}: {secret}")
        click.echo("Send it as `Authorization: Bearer <token>`.")


@token.command("list")
@click.option("--workspace", "-w", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print id, name, created_at, last_used_at.")
def token_list(workspace: str, as_json: bool) -> None:
    """List a workspace's API tokens (never the tokens themselves)."""
    from lantern.db import session_scope
    from lantern.workspaces.service import find_workspace, list_api_tokens

    with session_scope() as session:
        space = _workspace_or_exit(find_workspace(session, name=workspace), workspace)
        data = [
            {
                "id": row.id,
                "name": row.name,
                "created_at": row.created_at.isoformat(),
                "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
            }
            for row in list_api_tokens(session, workspace_id=space.id)
        ]
    if as_json:
        _echo_json(data)
        return
    for item in data:
        used = item["last_used_at"] or "never"
        click.echo(f"{item['id']:>5}  {item['name']}  created {item['created_at']}  used {used}")


@token.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1))
@click.option("--workspace", "-w", default="default", show_default=True)
def token_revoke(token_id: int, workspace: str) -> None:
    """Revoke an API token by its id (from `lantern token list`): it stops working at once."""
    from lantern.db import session_scope
    from lantern.errors import LanternError
    from lantern.workspaces.service import find_workspace, revoke_api_token

    try:
        with session_scope() as session:
            space = _workspace_or_exit(find_workspace(session, name=workspace), workspace)
            revoke_api_token(session, workspace_id=space.id, token_id=token_id)
    except LanternError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"API token {token_id} of workspace {workspace!r} revoked.")


def _workspace_or_exit(space: Workspace | None, name: str) -> Workspace:
    if space is None:
        raise click.ClickException(f"no workspace {name!r}")
    return space


@click.group()
def user() -> None:
    """People who log in to the dashboard."""


@user.command("create")
@click.argument("email")
@click.option("--workspace", "-w", default="default", show_default=True)
@click.option(
    "--password",
    envvar="LANTERN_NEW_PASSWORD",
    default=None,
    help="The password (else asked for; or set LANTERN_NEW_PASSWORD). At least 8 characters.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "email", "workspace"}.')
def user_create(email: str, workspace: str, password: str | None, as_json: bool) -> None:
    """Create a dashboard user in a workspace (created if new)."""
    from lantern.accounts.service import create_user
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.errors import LanternError
    from lantern.workspaces.service import get_or_create_workspace

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    upgrade()
    try:
        with session_scope() as session:
            space = get_or_create_workspace(
                session, name=workspace, sensitivity=get_settings().sensitivity
            )
            row = create_user(session, workspace=space, email=email, password=password)
            data = {"id": row.id, "email": row.email, "workspace": workspace}
    except LanternError as exc:
        raise click.ClickException(exc.detail) from exc
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"User {data['email']} can now log in to workspace {workspace!r}.")


@user.command("password")
@click.argument("email")
@click.option("--password", envvar="LANTERN_NEW_PASSWORD", default=None)
def user_password(email: str, password: str | None) -> None:
    """Set a user's password (their browser sessions end)."""
    from lantern.accounts.service import find_user, set_password
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.errors import LanternError

    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    upgrade()
    try:
        with session_scope() as session:
            found = find_user(session, email=email)
            if found is None:
                raise click.ClickException(f"no user {email!r}")
            set_password(session, user=found, password=password)
    except LanternError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"Password of {email} changed.")
