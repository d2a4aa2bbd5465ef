"""gunicorn settings for `make run` and the container image.

Reference: https://docs.gunicorn.org/en/stable/settings.html
HOST, PORT and WEB_CONCURRENCY come from the environment (see app/settings.py).
"""

import sys
from pathlib import Path
from typing import Any

from app.cli import abort_start, preflight
from app.errors import ConfigError
from app.settings import load_server_settings

try:
    _server = load_server_settings()
except ConfigError as exc:
    abort_start(exc.message)

_host = f"[{_server.host}]" if ":" in _server.host else _server.host
bind = [f"{_host}:{_server.port}"]
workers = _server.web_concurrency
worker_class = "uvicorn_worker.UvicornWorker"
# A worker silent for this long is killed and replaced.
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
keepalive = 5
# Heartbeat files on a RAM disk, so a slow disk cannot get workers killed:
# https://docs.gunicorn.org/en/stable/faq.html#blocking-os-fchmod
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
# The application writes one structured line per request itself.
accesslog = None
# gunicorn 27's control socket would write under $HOME and collide between two
# servers on one machine; this service is controlled by signals only.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Verify settings and model once, in the master, before any worker starts."""
    if not preflight():
        sys.exit(1)
