"""Running the server: its socket is bound before anything claims to be serving (a busy
port is one clear line), and Ctrl-C says that the server stopped, nothing more."""

from __future__ import annotations

import errno
import socket

from ...errors import InterruptError, WordGPTError
from ...logs import log
from .app import create_app
from .state import ServeConfig


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use or an address that is not this
    machine's is one clear error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise WordGPTError(
                f"port {port} on {host} is in use (another server?); choose one with --port"
            ) from None
        raise WordGPTError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    return sock


def serve_forever(cfg: ServeConfig, port: int) -> None:
    """Serve ``cfg.runs_dir`` until Ctrl-C (exit code 130, with its own message)."""
    import uvicorn

    sock = bind(cfg.host, port)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(f"note: listening on {cfg.host}: other machines can reach this page")
    log.info(f"wordgpt serve: {cfg.runs_dir} on http://{cfg.host}:{port}  (Ctrl-C stops)")
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), log_level="warning"))
    try:  # uvicorn shuts down on the signal, then raises it again once done
        server.run(sockets=[sock])
    except (KeyboardInterrupt, InterruptError):
        pass
    finally:
        sock.close()
    if not server.started:
        raise WordGPTError("the server could not start (see the lines above)")
    raise InterruptError("stopped serving")
