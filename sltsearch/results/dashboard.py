"""A run's Optuna study in optuna-dashboard (the ``dashboard`` extra), served on the loopback interface only.

The study is opened where `sltsearch run` put it: the run folder's ``study.journal``, the spec's
``search.storage``, or the RDB URL given with ``storage`` (run.json records such a URL with its password
masked, so it has to be passed again). The server binds 127.0.0.1, on a free port unless one is asked
for, so it is never reachable from other machines.

Other programs on this machine can still reach a loopback port, and so can a web page through DNS
rebinding (a name that resolves to 127.0.0.1). So the dashboard is read-only unless ``allow_writes``
(``--allow-writes``: notes, deleting or renaming studies, telling trials), and it answers only requests
whose ``Host`` is the loopback address (and, for writes, whose ``Origin`` is too): a rebinding page sends
its own host name and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sltsearch.errors import RunDirError, UserError
from sltsearch.runfolder.folder import read_run, run_info

HOST = "127.0.0.1"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def _host_name(value: str) -> str:
    """The host of a ``Host`` header or an ``Origin`` URL, without scheme, port or IPv6 brackets."""
    value = value.strip().lower().rpartition("://")[2]
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def guard(app: Callable[..., Any], allow_writes: bool = False) -> Callable[..., Any]:
    """The WSGI ``app`` behind two checks: a loopback ``Host`` (and ``Origin``, when sent) on every request,
    and no method that changes the study unless ``allow_writes``. Refusals are 403 / 405 with one line."""

    def refuse(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
        body = (text + "\n").encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = _host_name(environ.get("HTTP_HOST", ""))
        origin = environ.get("HTTP_ORIGIN")
        if host not in LOOPBACK_NAMES or (origin is not None and _host_name(origin) not in LOOPBACK_NAMES):
            return refuse(start_response, "403 Forbidden", "sltsearch dashboard: only requests to 127.0.0.1 are served")
        if environ.get("REQUEST_METHOD", "GET").upper() not in READ_METHODS and not allow_writes:
            return refuse(
                start_response,
                "405 Method Not Allowed",
                "sltsearch dashboard is read-only; restart it with --allow-writes to change the study",
            )
        return app(environ, start_response)

    return guarded


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        """Requests are not logged: the terminal shows only the address."""


def open_study_storage(run_dir: str | Path, storage: str | None = None) -> tuple[Any, str]:
    """The Optuna storage holding a run's study, and the study's name (one-line errors when absent)."""
    import optuna

    from sltsearch.search.optuna_backend import JOURNAL_FILE, make_storage

    run_dir, spec = read_run(run_dir)
    name = spec.search.study_name or spec.name
    if storage is None and spec.search.storage is None and not (run_dir / JOURNAL_FILE).is_file():
        where = run_info(run_dir).get("storage", "")
        hint = f" (run.json says it lives in {where}: pass --storage with the full URL)" if where else ""
        raise RunDirError(f"{run_dir}: no {JOURNAL_FILE}; the study is elsewhere{hint}")
    backend = make_storage(spec, run_dir, storage)
    names = optuna.study.get_all_study_names(backend)
    if name not in names:
        raise RunDirError(f"{run_dir}: the storage holds no study '{name}' (it holds: {', '.join(names) or 'none'})")
    return backend, name


def serve(
    run_dir: str | Path,
    *,
    port: int = 0,
    storage: str | None = None,
    on_ready: Callable[[str, str], None] | None = None,
    allow_writes: bool = False,
) -> None:
    """Serve optuna-dashboard for the run's study on 127.0.0.1 until interrupted; ``port`` 0 = a free one.

    ``on_ready(url, study_name)`` is called once the socket is bound. Read-only unless ``allow_writes``.
    """
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise UserError("sltsearch dashboard needs optuna-dashboard: pip install 'sltsearch[dashboard]'") from None
    if not 0 <= port <= 65535:
        raise UserError(f"--port: {port} is not a port number (0-65535; 0 picks a free one)")
    backend, name = open_study_storage(run_dir, storage)
    try:
        app = guard(wsgi(backend), allow_writes)
        server = make_server(HOST, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as err:
        raise UserError(f"--port {port}: cannot listen on {HOST} ({err.strerror}); pick another, or omit it") from None
    with server:
        if on_ready:
            on_ready(f"http://{HOST}:{server.server_port}/dashboard", name)
        server.serve_forever()
