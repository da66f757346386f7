"""A private PostgreSQL cluster for the tests: the Debian package's server binaries, a temporary data
directory, loopback only, trust authentication inside that cluster only. Started once per session,
stopped by the PID it was started with. No Docker, no mocks."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from servers import free_port


def find_bin() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<version>/bin), or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


_PREFIX = "polyrelay-pg-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_dirs() -> None:
    """Remove the temp dirs of earlier sessions that were killed before their teardown ran (their
    servers went with them: see _die_with_parent). Only dirs whose owning pytest process is gone."""
    for owner in glob.glob(os.path.join(tempfile.gettempdir(), _PREFIX + "*", "owner.pid")):
        try:
            pid = int(Path(owner).read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(Path(owner).parent, ignore_errors=True)


def _die_with_parent() -> None:
    """In the server's process, after it dropped root: a fast shutdown (SIGINT) if this test process
    dies without its teardown (killed by a timeout), so no server outlives the session."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc Linux: the teardown is the only stop
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


class PgCluster:
    """initdb + postgres in a temp dir; `database()` makes a new, empty database and returns its URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        # Not under pytest's basetemp: that is mode 0700 root, and the server runs as `postgres`.
        _sweep_stale_dirs()
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        self._user: str | None = None   # the OS user the server runs as, when we are root

    # ---- running the server's programs -----------------------------------------------------

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments that drop root: initdb and postgres refuse to run as root."""
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": entry.pw_dir, "USER": self._user, "LOGNAME": self._user}}

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=120, **self._as_owner())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> PgCluster:
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` OS user to run the "
                                   "server as (the Debian package creates it)") from None
            self._user = "postgres"
            shutil.chown(self.root, "postgres", "postgres")
        self.sock.mkdir()
        if self._user:
            shutil.chown(self.sock, self._user, self._user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--no-sync", "--auth=reject")
        # trust, from the socket dir and 127.0.0.1 only, in this throwaway cluster only
        (self.data / "pg_hba.conf").write_text("local all all trust\n"
                                               "host all all 127.0.0.1/32 trust\n")
        self.port = free_port()
        with open(self.log, "ab") as out:
            if self._user:
                shutil.chown(self.log, self._user, self._user)
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, **self._as_owner())  # type: ignore[call-overload]
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self._log_tail()}")
            done = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1",
                                   "-p", str(self.port), "-U", "postgres", "-d", "postgres"])
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections in {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """Create a new empty database; return its postgresql:// URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}".lower()
        done = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                               "-c", f'CREATE DATABASE "{name}"'],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {done.stderr}")
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT, what `pg_ctl stop -m fast` sends) of the server we started, by its
        PID; then the temp dir goes. Safe to call twice and after a failed start."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
