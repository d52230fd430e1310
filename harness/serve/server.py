"""Run an app under uvicorn in a background thread (tests, and the agent cells in-process).

::

    with ServerThread(create_app({"baseline": backend})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")

The socket is bound before the thread starts (``port=0`` picks a free port), so
``base_url`` is known at once; ``__enter__`` returns once uvicorn is accepting requests.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class ServerThread:
    """Context manager serving ``app`` on ``host:port`` from a daemon thread.

    Args:
        app: an ASGI app (:func:`harness.serve.app.create_app`).
        host: bind address (loopback by default; nothing else should reach a benchmark server).
        port: TCP port; ``0`` = a free one, read back into :attr:`port`.
        startup_timeout_s: how long ``__enter__`` waits for uvicorn, in seconds.

    Attributes:
        port: the bound port.
        url: ``http://host:port``.
        base_url: ``http://host:port/v1`` (what OpenAI clients and LiteLLM take as ``api_base``).

    Raises:
        OSError: the address cannot be bound (in the constructor).
        RuntimeError: uvicorn did not start within ``startup_timeout_s`` (in ``__enter__``).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0,
                 log_level: str = "warning"):
        self.app, self.host, self.startup_timeout_s = app, host, startup_timeout_s
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off"))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc

    def start(self) -> "ServerThread":
        """Start serving and wait until ready (what ``__enter__`` does)."""
        self._thread = threading.Thread(target=self._run, name=f"harness-serve:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {self.startup_timeout_s} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread (in-flight requests finish first)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self._socket.close()
        except OSError:
            pass

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
