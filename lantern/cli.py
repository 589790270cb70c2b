"""The ``lantern`` command: serve | db | source | token | metrics | replay."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from lantern import __version__
from lantern.config import get_settings


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def workspace_option(*, creates: bool) -> Any:
    """--workspace/-w: optional while the database has one workspace."""
    made = " A workspace named here that does not exist yet is made." if creates else ""
    return click.option(
        "--workspace",
        "-w",
        default=None,
        metavar="NAME",
        help="The workspace to act on; needed only when there are several." + made,
    )


class _LazyGroup(click.Group):
    """A group whose heavier commands are imported only when run or asked for their help.

    `replay` pulls in the detector (pandas, statsmodels, scipy): two seconds and 100 MB
    that every other command, and `serve`'s supervising process, can do without.
    """

    lazy = {
        "replay": "lantern.replay:replay",
        "token": "lantern.cli_accounts:token",
        "user": "lantern.cli_accounts:user",
    }
    # the first sentence of each one's help, which `lantern --help` lists without
    # importing it (a test checks that they are the commands' own)
    summaries = {
        "replay": "Replay detection over PATHS, hour by hour, as the live service would have "
        "run it.",
        "token": "Workspace API tokens, for scripts using the dashboard API.",
        "user": "People who log in to the dashboard.",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help as click lists them, the lazy ones from
        `summaries` rather than imported (`replay` alone takes a second to import)."""
        commands: list[tuple[str, click.Command | None]] = []
        for name in self.list_commands(ctx):
            command = None if name in self.lazy else super().get_command(ctx, name)
            if command is None or not command.hidden:
                commands.append((name, command))
        if not commands:
            return
        # click's own layout (`click.Group.format_commands`)
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = []
        for name, command in commands:
            listed = command or click.Command(name, help=self.summaries[name])
            rows.append((name, listed.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        # an ordinary mistake (a name taken, a source that does not exist, a setting out
        # of range, a database that cannot be reached) is a one-line error saying what to
        # do, with exit code 1, never a traceback
        from alembic.util.exc import CommandError
        from pydantic import ValidationError
        from sqlalchemy.exc import OperationalError

        from lantern.errors import LanternError

        try:
            return super().invoke(ctx)
        except LanternError as exc:
            raise click.ClickException(exc.detail) from None
        except ValidationError as exc:
            raise click.ClickException(_settings_error(exc)) from None
        except OperationalError as exc:
            raise click.ClickException(
                f"the database cannot be used ({_first_line(exc.orig)}); check "
                f"LANTERN_DATABASE_URL or LANTERN_DATA_DIR: {_safe_url(_database_url())}"
            ) from None
        except CommandError as exc:
            raise click.ClickException(f"the schema cannot be migrated: {exc}") from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, _, name = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lantern")
def main() -> None:
    """Lantern watches your Segment metrics and tells Slack when one changes.

    Settings come from LANTERN_* environment variables (see README); with none set,
    Lantern keeps its data in a SQLite file under ./lantern-data.
    """


@main.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on [default: 8000].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes. One runs its Python on one core at most; more use more "
    "cores for ingest (figures in docs/operating.md), each about 200 MB more.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="First fill a demo workspace (as `lantern demo` does) unless the database has one.",
)
def serve(host: str | None, port: int | None, workers: int, demo: bool) -> None:
    """Run the service: Segment ingest, dashboard and API (migrates the database first)."""
    from lantern.api.server import serve as run_server
    from lantern.db.migrate import upgrade

    if host is not None or port is not None:
        # the address given here is the service's for everything that names it (the demo's
        # "Dashboard:" line, links in Slack messages while LANTERN_PUBLIC_URL is unset),
        # in this process and in the worker processes, which read their settings anew
        os.environ.update(
            {
                name: str(value)
                for name, value in (("LANTERN_HOST", host), ("LANTERN_PORT", port))
                if value is not None
            }
        )
        get_settings.cache_clear()
    settings = get_settings()
    host, port = settings.host, settings.port
    url = settings.resolved_database_url
    upgrade()
    if demo:
        from lantern.db.session import get_engine
        from lantern.demo import DEMO_EMAIL, existing

        if existing(get_engine()) is None:
            _run_demo(weeks=5)
        else:
            click.echo(f"The demo workspace is already here: log in as {DEMO_EMAIL}.")
    click.echo(f"Lantern {__version__} on http://{host}:{port}  (database: {_safe_url(url)})")
    run_server(host=host, port=port, workers=workers, settings=settings)


@main.command()
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    default=None,
    help="Score the hourly pass on the Dask scheduler at ADDRESS (tcp://host:8786); "
    "the same as LANTERN_DASK_SCHEDULER_ADDRESS.",
)
def worker(dask_address: str | None) -> None:
    """Run the scheduled jobs alone (detection, notifications, clean-up), without the web app.

    Start as many as you like against one PostgreSQL: a database lock lets one of them run
    each job at a time.
    """
    import signal
    import time

    from lantern.config import Settings
    from lantern.db.migrate import upgrade
    from lantern.db.session import get_engine
    from lantern.scheduler import start_scheduler
    from lantern.scoring import DaskUnavailable, close_dask_clients, dask_client

    settings = get_settings()
    if dask_address is not None:
        settings = Settings(detect_executor="dask", dask_scheduler_address=dask_address)
    if settings.detect_executor == "dask":
        assert settings.dask_scheduler_address is not None  # the settings' validator saw to it
        try:  # connect now, once for the worker's life: a wrong address fails here
            dask_client(settings.dask_scheduler_address)
        except DaskUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    # the handler is in place before the worker says it is running: a stop asked for at
    # any moment after that line is a clean one. It only flips a flag: a handler runs in
    # the main thread between two of its steps, and one that took a lock (threading.Event
    # does) would wait forever on a lock the main thread held when the signal came
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    upgrade()
    scheduler = start_scheduler(settings, get_engine())
    scored_on = (
        f", detection on Dask at {settings.dask_scheduler_address}"
        if settings.detect_executor == "dask"
        else ""
    )
    click.echo(
        f"Lantern worker running (database: {_safe_url(settings.resolved_database_url)}{scored_on})"
    )
    try:
        while not stopping:
            time.sleep(0.2)  # a signal cuts the sleep short only to run its handler
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=True)
        close_dask_clients()


def _settings_error(exc: Any) -> str:
    """A pydantic error about LANTERN_* variables, as one line naming the variable."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule between settings: its message names them
            parts.append(message)
            continue
        name = "LANTERN_" + "_".join(str(p) for p in error["loc"]).upper()
        parts.append(f"{name}: {message} (got {error.get('input')!r})")
    return "a setting is wrong: " + "; ".join(parts)


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _database_url() -> str:
    try:
        return get_settings().resolved_database_url
    except Exception:  # the settings themselves are wrong: the other message says so
        return "(unreadable settings)"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """Database schema: upgrade, or show the revision."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the schema migrations (`lantern serve` does this by itself)."""
    from lantern.db.migrate import current_revision, upgrade

    upgrade(revision=revision)
    click.echo(f"database at revision {current_revision()}")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision and whether it is the newest."""
    from lantern.db.migrate import current_revision, head_revision

    current, head = current_revision(), head_revision()
    click.echo(f"{current or 'empty'} (newest: {head})")
    sys.exit(0 if current == head else 1)


@main.group()
def source() -> None:
    """Sources: each has an API key that Segment or an analytics library sends."""


@source.command("create")
@click.argument("name")
@workspace_option(creates=True)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"id", "name", "workspace", "api_key"}.'
)
def source_create(name: str, workspace: str | None, as_json: bool) -> None:
    """Create a source and print its API key (shown this once only).

    With one workspace (say the demo's), the source is made there, so its logins see it.
    """
    from lantern.breakdowns.service import add_default_dimensions
    from lantern.db import session_scope
    from lantern.db.migrate import upgrade
    from lantern.workspaces.service import choose_workspace, create_source

    upgrade()
    with session_scope() as session:
        space = choose_workspace(session, name=workspace, create_with=get_settings().sensitivity)
        row, key = create_source(session, workspace=space, name=name)
        add_default_dimensions(session, source_id=row.id)
        data = {"id": row.id, "name": row.name, "workspace": space.name, "api_key": key}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"source {name!r} created in workspace {data['workspace']!r} (id {data['id']})")
        click.echo(f"API key: {key}")
        click.echo(
            "Keep it now: Lantern stores only its hash. Paste it into Segment's Lantern "
            "destination, or pass it as the write key of an analytics library."
        )


@source.command("list")
@click.option("--json", "as_json", is_flag=True)
def source_list(as_json: bool) -> None:
    """List sources with their workspace."""
    from sqlalchemy import select

    from lantern.db import session_scope
    from lantern.workspaces.models import Source, Workspace

    with session_scope() as session:
        rows = session.execute(
            select(Source.id, Source.name, Workspace.name, Source.key_hint)
            .join(Workspace)
            .order_by(Source.id)
        ).all()
    data = [{"id": i, "name": n, "workspace": w, "key_starts": h} for i, n, w, h in rows]
    if as_json:
        _echo_json(data)
        return
    for item in data:
        click.echo(
            f"{item['id']:>5}  {item['workspace']}/{item['name']}  key {item['key_starts']}…"
        )


@source.command("rotate")
@click.argument("name")
@workspace_option(creates=False)
@click.option("--json", "as_json", is_flag=True)
def source_rotate(name: str, workspace: str | None, as_json: bool) -> None:
    """Give a source a new API key; the old key stops working."""
    from lantern.db import session_scope
    from lantern.workspaces.models import Workspace
    from lantern.workspaces.service import find_source, rotate_source_key

    with session_scope() as session:
        row = find_source(session, name=name, workspace=workspace)
        key = rotate_source_key(session, source=row)
        space = session.get(Workspace, row.workspace_id)
        assert space is not None
        data = {"id": row.id, "name": row.name, "workspace": space.name, "api_key": key}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"new API key for {name!r} in workspace {data['workspace']!r}: {key}")


@main.command()
@click.option("--source", "source_name", required=True, help="The source's name.")
@workspace_option(creates=False)
@click.option("--json", "as_json", is_flag=True)
def metrics(source_name: str, workspace: str | None, as_json: bool) -> None:
    """List a source's discovered metrics with their totals."""
    from lantern.db import get_engine, session_scope
    from lantern.metrics.service import list_metrics
    from lantern.workspaces.models import Workspace
    from lantern.workspaces.service import find_source

    with session_scope() as session:
        found = find_source(session, name=source_name, workspace=workspace)
        owner = session.get(Workspace, found.workspace_id)
        assert owner is not None
        source_id, space = found.id, owner.name
    with get_engine().connect() as connection:
        rows = list_metrics(connection, source_id=source_id)
    data = [
        {
            "id": m.id,
            "kind": m.kind,
            "name": m.name,
            "events": m.events,
            "value_sum": m.value_sum,
            "first_hour": m.first_hour.isoformat() if m.first_hour is not None else None,
            "last_hour": m.last_hour.isoformat() if m.last_hour is not None else None,
        }
        for m in rows
    ]
    if as_json:
        _echo_json(data)
        return
    click.echo(f"metrics of source {source_name!r} in workspace {space!r}:", err=True)
    if not data:
        click.echo("  none yet: send it events (see README, 'Send it events')", err=True)
    for item in data:
        click.echo(f"{item['kind']:>10}  {item['name']:<40} {item['events']:>10} events")


@main.command()
@click.option(
    "--weeks",
    type=click.IntRange(2, 12),
    default=5,
    show_default=True,
    help="Weeks of history to generate.",
)
def demo(weeks: int) -> None:
    """Fill a demo workspace with weeks of events and the insights Lantern would have raised.

    The events go through the real ingest path (/v1/import); detection then runs hour by
    hour over the history as the scheduler would have. Run `lantern serve` afterwards and
    open the dashboard (or do both with `lantern serve --demo`).
    """
    _run_demo(weeks=weeks)


def _run_demo(*, weeks: int) -> None:
    from tqdm import tqdm

    from lantern.db.migrate import upgrade
    from lantern.db.session import get_engine, session_scope
    from lantern.demo import DEMO_WORKSPACE, existing, make_demo
    from lantern.workspaces.service import create_api_token, get_or_create_workspace

    settings = get_settings()
    upgrade()
    engine = get_engine()
    if existing(engine) is not None:
        raise click.ClickException(
            f"this database already has a {DEMO_WORKSPACE!r} workspace; point "
            "LANTERN_DATA_DIR (or LANTERN_DATABASE_URL) at a fresh one for a new demo"
        )
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "scoring":
            # one pass over the whole history, with nothing to count along the way
            for bar in bars.values():
                bar.close()
            click.echo(
                f"scoring {total:,} hours of history as the hourly pass would have…", err=True
            )
            return
        if stage not in bars:
            bars[stage] = tqdm(total=total or None, desc="importing events", unit=" " + stage)
        bars[stage].update(done - bars[stage].n)

    made = make_demo(engine, settings, weeks=weeks, progress=progress)
    for bar in bars.values():
        bar.close()
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name=DEMO_WORKSPACE)
        _, token = create_api_token(session, workspace=workspace, name="demo")
    click.echo(f"{made.events:,} events imported; {made.insights} insights found.")
    click.echo(f"Dashboard: {settings.resolved_public_url}")
    click.echo(f"Log in as {made.email} with password {made.password}")
    click.echo(f"Source API key: {made.api_key}")
    click.echo(f"API token: {token}")
