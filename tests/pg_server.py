"""A throwaway PostgreSQL server on a loopback port for tests: initdb in a temporary folder, pg_ctl start,
and pg_ctl stop of that same data folder (never anything else on the machine). As root, the server runs
as the ``postgres`` user (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def server_bin() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "sltsearch", password: str = "pw") -> str:
        return f"postgresql://sltsearch:{password}@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", action, *extra)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    binary = server_bin()
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="sltsearch-pg-"))
    root.chmod(0o777)
    server = PgServer(binary, root, _free_port())
    server.data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(server.data, "postgres", "postgres")
    pwfile = root / "pw"
    pwfile.write_text("pw\n")
    pwfile.chmod(0o644)
    server._run("initdb", "-D", str(server.data), "-U", "sltsearch", "--auth=scram-sha-256", f"--pwfile={pwfile}")
    server.pg_ctl("start")
    env = {**os.environ, "PGPASSWORD": "pw"}
    subprocess.run(
        [str(binary / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "sltsearch", "sltsearch"],
        check=True, env=env, capture_output=True, timeout=60,
    )
    return server
