"""`lantern token` and `lantern user`: workspace API tokens and dashboard logins."""

from __future__ import annotations

import click

from lantern.cli import _echo_json, workspace_option
from lantern.config import get_settings


@click.group()
def token() -> None:
    """Workspace API tokens, for scripts using the dashboard API."""


@token.command("create")
@workspace_option(creates=True)
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--json", "as_json", is_flag=True)
def token_create(workspace: str | None, name: str, as_json: bool) -> None:
    """Create an API token (shown this once only)."""
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.workspaces.service import choose_workspace, create_api_token

    upgrade()
    with session_scope() as session:
        space = choose_workspace(session, name=workspace, create_with=get_settings().sensitivity)
        row, secret = create_api_token(session, workspace=space, name=name)
        data = {"id": row.id, "workspace": space.name, "token": secret}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"API token for workspace {data['workspace']!r}: {secret}")
        click.echo("Send it as `Authorization: Bearer <token>`.")


@token.command("list")
@workspace_option(creates=False)
@click.option("--json", "as_json", is_flag=True, help="Print id, name, created_at, last_used_at.")
def token_list(workspace: str | None, as_json: bool) -> None:
    """List a workspace's API tokens (never the tokens themselves)."""
    from lantern.db import session_scope
    from lantern.workspaces.service import choose_workspace, list_api_tokens

    with session_scope() as session:
        space = choose_workspace(session, name=workspace)
        space_name = space.name
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
    click.echo(f"API tokens of workspace {space_name!r}:", err=True)
    for item in data:
        used = item["last_used_at"] or "never"
        click.echo(f"{item['id']:>5}  {item['name']}  created {item['created_at']}  used {used}")


@token.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1))
@workspace_option(creates=False)
def token_revoke(token_id: int, workspace: str | None) -> None:
    """Revoke an API token by its id (from `lantern token list`): it stops working at once."""
    from lantern.db import session_scope
    from lantern.workspaces.service import choose_workspace, revoke_api_token

    with session_scope() as session:
        space = choose_workspace(session, name=workspace)
        revoke_api_token(session, workspace_id=space.id, token_id=token_id)
        space_name = space.name
    click.echo(f"API token {token_id} of workspace {space_name!r} revoked.")


@click.group()
def user() -> None:
    """People who log in to the dashboard."""


@user.command("create")
@click.argument("email")
@workspace_option(creates=True)
@click.option(
    "--password",
    envvar="LANTERN_NEW_PASSWORD",
    default=None,
    help="The password (else asked for; or set LANTERN_NEW_PASSWORD). At least 8 characters.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "email", "workspace"}.')
def user_create(email: str, workspace: str | None, password: str | None, as_json: bool) -> None:
    """Create a dashboard user in a workspace (the only one, the one named, or a new one)."""
    from lantern.accounts.service import create_user
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.workspaces.service import choose_workspace

    upgrade()
    with session_scope() as session:
        # which workspace, before asking for a password that would be thrown away
        choose_workspace(session, name=workspace, create_with=get_settings().sensitivity)
        session.rollback()
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session_scope() as session:
        space = choose_workspace(session, name=workspace, create_with=get_settings().sensitivity)
        row = create_user(session, workspace=space, email=email, password=password)
        data = {"id": row.id, "email": row.email, "workspace": space.name}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"User {data['email']} can now log in to workspace {data['workspace']!r}.")


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
