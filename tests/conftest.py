"""Fixtures: every database test runs on SQLite and on PostgreSQL.

Each engine is migrated once per session (once per pytest-xdist worker). Tests isolate
themselves by creating their own workspace and source (see `tests/factories.py`), which also
lets a live server in another thread see their rows. A test that needs a database of its
own (`fresh_engine`) gets a copy of a template migrated once per session and engine.

Under pytest-xdist (`-n 2 --dist loadgroup`, as `scripts/test.py` runs it), the tests that
share a module-scoped fixture run on one worker, so that fixture is built once per module
(and engine): see `pytest_collection_modifyitems`.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from tests.fakeslack import fake_slack  # noqa: F401  (a fixture)
from tests.fakewebhook import other_receiver, receiver  # noqa: F401  (fixtures)

PG_ADMIN_URL = os.environ.get(
    "LANTERN_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

# PostgreSQL checkpoints on every DROP DATABASE (a second or more on a busy machine): the
# databases of single tests are dropped here, behind the tests, and all are gone when the
# session ends.
_DROPS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")


def _drop(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def drop_database_later(admin: Engine, name: str) -> None:
    """Drop database `name` (its connections closed by force) in the background."""
    _DROPS.submit(_drop, admin, name)


# Per process (each pytest-xdist worker): the migrated database of each engine, and the
# template `fresh_engine` copies.
_MIGRATED: dict[str, str] = {}
_TEMPLATES: dict[str, str] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "postgresql" in _TEMPLATES:
        drop_database_later(
            create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT"), _TEMPLATES["postgresql"]
        )
    _DROPS.shutdown(wait=True)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Under pytest-xdist, keep the tests that share a module-scoped fixture on one worker.

    Their group is the module and the engine, so the two engines' halves of a module still
    run side by side (a module-scoped fixture that is not built per engine, such as the
    browser, is then built once per half). A module whose fixture must be built only once
    (a Dask cluster) names its group itself with `pytest.mark.xdist_group`, which wins.
    `--dist loadgroup` honours the groups; any other test goes to whichever worker is free.
    The groups are marked before pytest-xdist's own hook reads them.

    pytest-xdist hands out the groups first (the largest first), then single tests in the
    order collected: a minute-long test collected last would keep one worker busy after the
    other has finished. So once every other hook has ordered the items (pytest keeps each
    engine's tests together: a worker that switches engines builds its database again), the
    tests marked `slow` are moved to the front, each engine's still together.
    """
    if config.pluginmanager.hasplugin("xdist"):
        _group_by_module_fixture(items)
    yield
    if config.pluginmanager.hasplugin("xdist"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


def _group_by_module_fixture(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group") is not None:
            continue
        found = info.name2fixturedefs.values()
        if not any(defs and defs[-1].scope == "module" for defs in found):
            continue
        group = item.nodeid.split("::")[0]
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("database_url") if callspec is not None else None
        if engine:
            group += f":{engine}"
        item.add_marker(pytest.mark.xdist_group(group))


def _postgres_or_skip() -> Engine:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    return admin


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = _postgres_or_skip()
    name = f"lantern_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a migrated database, once per engine.

    Built once per process and engine, even when the tests of the two engines alternate on a
    worker (pytest would otherwise build a new one at each change of engine).
    """
    if request.param not in _MIGRATED:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'lantern.db'}"
        else:
            url = request.getfixturevalue("postgres_url")
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        _MIGRATED[request.param] = url
    return _MIGRATED[request.param]


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on the same engine as `database_url`."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = _postgres_or_skip()
    name = f"lantern_empty_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    drop_database_later(admin, name)


def migrated_template(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to the head revision that no test writes to, once per engine.

    `fresh_engine` copies it (a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on
    PostgreSQL) instead of running every migration again for each test: the same schema and
    rows in a fraction of the time. Returns the SQLite file's path or the PostgreSQL name;
    the PostgreSQL one is dropped when the session ends.
    """
    engine_name = make_url(database_url).get_backend_name()
    if engine_name in _TEMPLATES:
        return _TEMPLATES[engine_name]
    if engine_name == "sqlite":
        path = tmp_path_factory.mktemp("template") / "lantern.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()  # the last connection closed checkpoints the WAL into the file
        _TEMPLATES[engine_name] = str(path)
        return str(path)
    admin = _postgres_or_skip()
    name = f"lantern_template_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()  # PostgreSQL copies a template only while nobody is connected to it
    _TEMPLATES[engine_name] = name
    return name


@pytest.fixture
def fresh_engine(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database of its own, for tests of jobs that see every workspace's rows."""
    template = migrated_template(database_url, tmp_path_factory)
    if database_url.startswith("sqlite"):
        path = tmp_path / "fresh.db"
        shutil.copyfile(template, path)
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    admin = _postgres_or_skip()
    name = f"lantern_fresh_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    drop_database_later(admin, name)


@pytest.fixture
def fresh_client(fresh_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    """A client of an app on `fresh_engine`."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=fresh_engine.url.render_as_string(hide_password=False),
        scheduler_enabled=False,
    )
    with TestClient(create_app(settings, fresh_engine)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine; the same one for the whole session."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test database, with the scheduler off."""
    return Settings(data_dir=tmp_path, database_url=database_url, scheduler_enabled=False)


@pytest.fixture
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _free_port() -> int:
    """A loopback port nobody listens on just now (another process may take it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # held from here on: no other process can take the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
