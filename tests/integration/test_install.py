"""A built wheel, installed without the checkout, migrates its database and serves."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _installed_from_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding Lantern's wheel; its dependencies come from the test venv.

    The dependencies are reached through a plain path in a .pth file, which does not run
    the test venv's editable hook: `import lantern` finds the wheel's copy or nothing.
    """
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("lantern-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    # --ignore-installed: pip 23 running for another interpreter still sees its own venv,
    # whose editable Lantern it would take for this one and install nothing
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir


@pytest.mark.slow
def test_a_wheel_installed_away_from_the_checkout_upgrades_its_database_and_serves(
    tmp_path: Path,
) -> None:
    env_dir = _installed_from_wheel(tmp_path)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    port = _free_port()
    env = {
        "LANTERN_DATA_DIR": str(workdir / "data"),
        "LANTERN_PORT": str(port),
        "PATH": str(env_dir / "bin"),
    }

    where = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import lantern; print(lantern.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(env_dir)), where

    upgraded = subprocess.run(
        [str(env_dir / "bin" / "lantern"), "db", "upgrade"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at revision" in upgraded.stdout

    server = subprocess.Popen(
        [
            str(
                env_dir / "bin" / "lantern",
            ),
            "serve",
        ],
        cwd=workdir,
        env={**env, "LANTERN_SCHEDULER_ENABLED": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = r.read().decode()
            except OSError:
                time.sleep(0.3)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert health is not None, output
    assert '"status":"ok"' in health
