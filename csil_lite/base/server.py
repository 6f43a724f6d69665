"""A websocket server speaking openpi's protocol around any `BasePolicy` (the stand-in, or a test double).

What a client sees, as with openpi's `WebsocketPolicyServer`: right after the upgrade one binary frame with the
policy's metadata; then, per binary request frame (an observation dict), one binary reply frame: the policy's
result plus ``server_timing: {infer_ms, prev_total_ms}``. A request that carries ``request_id`` gets it echoed
in the reply (benchmarks match replies to requests with it). ``GET /healthz`` on the same port answers 200.
No per-message compression.

Where it differs from openpi's server, on purpose:

- a bad request (not msgpack, not a map, a missing/unknown key, wrong shape or dtype, NaN, over the size limit)
  is answered with one line naming the problem instead of a traceback; as in openpi, this is a *text* frame
  followed by close code 1011, and a policy exception (a bug) sends its traceback the same way;
- inference runs in a thread pool, so one slow inference never blocks the other connections' handshakes,
  health checks or requests (openpi's server awaits inference on its event loop).

The server binds 127.0.0.1 unless told otherwise: a policy server runs code on whatever it receives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from csil_lite.base.policy import BasePolicy, ObservationError, check_metadata, check_observation
from csil_lite.base.wire import WireError, pack, unpack

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "REQUEST_ID_KEY", "PolicyServer", "ServerThread"]

REQUEST_ID_KEY = "request_id"
# Two 224x224 RGB frames and a state are ~300 kB; 32 MiB leaves room for many cameras and catches garbage.
DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20
log = logging.getLogger(__name__)


class PolicyServer:
    """Serves `policy` on host:port (port 0: a free port, read back from `port` once started)."""

    def __init__(self, policy: BasePolicy, host: str = "127.0.0.1", port: int = 8000, *,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, workers: int = 4) -> None:
        self.policy, self.host, self.port = policy, host, int(port)
        self.metadata = dict(policy.metadata)
        self.spec = check_metadata(self.metadata)
        self.horizon, self.action_dim = int(self.metadata["action_horizon"]), int(self.metadata["action_dim"])
        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
        self.max_request_bytes = int(max_request_bytes)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers),
                                                           thread_name_prefix="csil-lite-infer")
        self._metadata_frame = pack(self.metadata)
        self.served = 0  # replies sent, all connections together

    # -- request handling ---------------------------------------------------------------------------------
    def parse_request(self, message: Any) -> dict[str, Any]:
        """The observation in `message`, or `ObservationError`/`WireError` naming what is wrong with it."""
        if isinstance(message, str):
            raise WireError("expected a binary msgpack frame, got a text frame")
        if len(message) > self.max_request_bytes:
            raise WireError(f"request of {len(message)} bytes exceeds this server's limit of "
                            f"{self.max_request_bytes} bytes")
        obs = unpack(message)
        check_observation(obs, self.spec, passthrough=(REQUEST_ID_KEY,))
        return obs

    def _infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        query = {k: v for k, v in obs.items() if k != REQUEST_ID_KEY}
        t0 = time.perf_counter()
        result = dict(self.policy.infer(query))
        infer_ms = 1e3 * (time.perf_counter() - t0)
        actions = result.get("actions")
        if not isinstance(actions, np.ndarray) or actions.shape != (self.horizon, self.action_dim):
            shape = getattr(actions, "shape", type(actions).__name__)
            raise RuntimeError(f"policy returned actions {shape}, expected an array [{self.horizon}, "
                               f"{self.action_dim}] (its metadata)")
        result["actions"] = np.asarray(actions, np.float32)
        result.setdefault("policy_timing", {"infer_ms": infer_ms})
        return result

    async def _handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        prev_total_ms: float | None = None
        await ws.send(self._metadata_frame)
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                return
            t0 = time.perf_counter()
            try:
                obs = self.parse_request(message)
            except (WireError, ObservationError) as e:
                log.info("bad request from %s: %s", ws.remote_address, e)
                await self._fail(ws, f"bad request: {e}")
                return
            try:
                result = await loop.run_in_executor(self._pool, self._infer, obs)
            except Exception:  # a bug in the policy: the traceback goes to the client, as openpi does
                log.exception("inference failed")
                await self._fail(ws, traceback.format_exc())
                return
            infer_ms = 1e3 * (time.perf_counter() - t0)
            timing = {"infer_ms": infer_ms}
            if prev_total_ms is not None:
                timing["prev_total_ms"] = prev_total_ms
            result["server_timing"] = timing
            if REQUEST_ID_KEY in obs:
                result[REQUEST_ID_KEY] = obs[REQUEST_ID_KEY]
            self.served += 1  # counted before sending: a client that has its reply sees it counted
            try:
                await ws.send(pack(result))
            except ConnectionClosed:
                return
            prev_total_ms = 1e3 * (time.perf_counter() - t0)

    @staticmethod
    async def _fail(ws: ServerConnection, text: str) -> None:
        try:
            await ws.send(text)
            await ws.close(1011, "internal error")  # openpi's code for a failed request
        except ConnectionClosed:
            pass

    @staticmethod
    def _health(connection: ServerConnection, request) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    # -- running ------------------------------------------------------------------------------------------
    async def serve(self, started: threading.Event | None = None, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set (forever without one)."""
        async with serve(self._handle, self.host, self.port, compression=None, max_size=None,
                         process_request=self._health, ping_interval=None) as server:
            self.port = int(server.sockets[0].getsockname()[1])
            if started is not None:
                started.set()
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ServerThread:
    """A `PolicyServer` on its own event loop in a daemon thread (tests, notebooks, benchmarks).

    ``with ServerThread(policy, port=0) as srv: ... srv.port ...``
    """

    def __init__(self, policy: BasePolicy, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.server = PolicyServer(policy, host, port, **kwargs)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="csil-lite-serve", daemon=True)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(self.server.serve(self._started, self._stop))
        except BaseException as e:  # reported by start()
            self._error = e
            self._started.set()
        finally:
            self._loop.close()

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"policy server on {self.host}:{self.server.port} did not start in {timeout} s")
        if self._error is not None:
            raise OSError(f"policy server could not listen on {self.host}:{self.server.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        self.server.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_server(policy: BasePolicy, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve `policy` in the foreground until interrupted (the `csil-lite serve` command)."""
    server = PolicyServer(policy, host, port, **kwargs)
    try:
        asyncio.run(server.serve())
    finally:
        server.close()


def describe(metadata: Mapping[str, Any]) -> str:
    """One line about a base's metadata, for logs."""
    keys = ", ".join(sorted(metadata.get("observation_spec", {})))
    return (f"{metadata.get('model', 'policy')}: chunk [{metadata.get('action_horizon')}, "
            f"{metadata.get('action_dim')}] from {{{keys}}}")
