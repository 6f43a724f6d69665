"""A client for openpi-protocol policy servers (`csil-lite serve`, or openpi's `scripts/serve_policy.py`).

Like openpi's `WebsocketClientPolicy` it connects without compression or a frame-size limit, reads the
metadata frame first, then sends one observation and waits for one reply per `infer`. Unlike the PyPI build
of `openpi-client` it retries while the server is still starting (a GPU box loading pi0.5 takes minutes) and,
when nobody answers in time, fails with one line naming host and port.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from csil_lite.base.policy import check_metadata
from csil_lite.base.wire import pack, unpack
from csil_lite.errors import UserError

__all__ = ["BaseServerError", "BaseUnreachable", "RemoteBasePolicy", "parse_address"]


class BaseUnreachable(UserError):
    """No openpi-protocol server answered at the given address in time."""


class BaseServerError(RuntimeError):
    """The server answered a request with an error frame (text), then closed the connection."""


def parse_address(text: str) -> tuple[str, int]:
    """"HOST:PORT" (or "ws://HOST:PORT") -> (host, port); `UserError` naming the text otherwise."""
    rest = text[len("ws://"):] if text.startswith("ws://") else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"base address {text!r}: expected HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:8000")
    return host, int(port)


class RemoteBasePolicy:
    """`BasePolicy` over a websocket. `wait` seconds of retries while the server starts (0: one attempt)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, *, wait: float = 30.0,
                 connect_timeout: float = 5.0, infer_timeout: float | None = 120.0,
                 api_key: str | None = None) -> None:
        self.host, self.port = host, int(port)
        self.uri = host if host.startswith("ws") else f"ws://{host}:{self.port}"
        self.infer_timeout = infer_timeout
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self._ws, self._metadata = self._connect(wait, connect_timeout, headers)
        check_metadata(self._metadata)

    def _connect(self, wait: float, timeout: float, headers: dict | None) -> tuple[ClientConnection, dict]:
        deadline = time.monotonic() + max(0.0, wait)
        attempts = 0
        while True:
            attempts += 1
            try:
                # entered as a context manager (websockets >= 17 deprecates bare connections); closed by close()
                ws = connect(self.uri, compression=None, max_size=None, open_timeout=timeout,
                             additional_headers=headers, close_timeout=1.0).__enter__()
            except InvalidURI as e:
                raise BaseUnreachable(f"base server address {self.uri!r} is not a websocket URI ({e})") from None
            except (OSError, TimeoutError, InvalidHandshake) as e:
                if time.monotonic() >= deadline:
                    raise BaseUnreachable(
                        f"no base policy server at {self.host}:{self.port} ({type(e).__name__}: {e}) after "
                        f"{attempts} attempt(s) in {wait:g} s; start one with `csil-lite serve --checkpoint DIR "
                        f"--port {self.port}` or check host and port") from None
                time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
                continue
            try:
                first = ws.recv(timeout=timeout)
            except (TimeoutError, ConnectionClosed) as e:
                ws.close()
                raise BaseUnreachable(f"server at {self.host}:{self.port} accepted the connection but sent no "
                                      f"metadata frame ({type(e).__name__}); is it an openpi policy server?") from None
            if isinstance(first, str):
                ws.close()
                raise BaseServerError(f"server at {self.host}:{self.port} sent an error instead of metadata: "
                                      f"{first}")
            return ws, unpack(first)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One request, one reply. Arrays in the reply are read-only views (copy before writing)."""
        try:
            self._ws.send(pack(dict(obs)))
            reply = self._ws.recv(timeout=self.infer_timeout)
        except ConnectionClosed as e:
            raise BaseServerError(f"connection to {self.host}:{self.port} closed ({e})") from None
        if isinstance(reply, str):
            raise BaseServerError(f"base server at {self.host}:{self.port} refused the request: {reply.strip()}")
        return unpack(reply)

    def reset(self) -> None:
        """Nothing to forget on the client (openpi's servers keep no episode state either)."""

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> RemoteBasePolicy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
