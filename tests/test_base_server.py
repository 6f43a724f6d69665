"""`PolicyServer` + `RemoteBasePolicy` on loopback: metadata first, one reply per request, /healthz, a one-line
error frame + close 1011 for each kind of malformed request while other clients keep being served, inference
off the event loop, retries while a server starts, and a one-line error when nobody listens."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from csil_lite.base.client import BaseServerError, BaseUnreachable, RemoteBasePolicy, parse_address
from csil_lite.base.policy import LOWDIM_KEY, CallableBase
from csil_lite.base.server import ServerThread
from csil_lite.base.wire import pack, unpack
from csil_lite.errors import UserError, one_line


def echo_base(delay: float = 0.0, horizon: int = 10) -> CallableBase:
    """Chunk row i = lowdim[:2] + i: the reply shows which observation it answers."""

    def chunk(x):
        if delay:
            time.sleep(delay)
        return x[None, :2] + np.arange(horizon, dtype=np.float32)[:, None]

    return CallableBase(chunk, obs_dim=3, action_dim=2, horizon=horizon, name="echo")


def obs(v: float = 0.0) -> dict:
    return {LOWDIM_KEY: np.array([v, -v, 1.0], np.float32)}


@pytest.fixture(scope="module")
def server():
    with ServerThread(echo_base(), port=0) as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metadata_then_replies(server):
    with RemoteBasePolicy("127.0.0.1", server.port, wait=0) as client:
        meta = client.metadata
        assert meta["action_horizon"] == 10 and meta["action_dim"] == 2 and LOWDIM_KEY in meta["observation_spec"]
        for v in (0.0, 1.5, -2.0):
            reply = client.infer({**obs(v), "request_id": int(10 * v), "prompt": "lift"})
            a = reply["actions"]
            assert a.dtype == np.float32 and a.shape == (10, 2)
            np.testing.assert_array_equal(a[:, 0], v + np.arange(10))
            assert reply["request_id"] == int(10 * v) and reply["server_timing"]["infer_ms"] >= 0


def test_healthz(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
        assert r.status == 200


MALFORMED = [
    (b"\xc1\xc1 garbage", "not a msgpack document"),
    (msgpack.packb([1, 2, 3]), "observation must be a map"),
    (pack({"prompt": "x"}), "misses required key"),
    (pack({**obs(), "gripper": np.zeros(1)}), r"unknown key\(s\) \['gripper'\]"),
    (pack({LOWDIM_KEY: np.zeros(4, np.float32)}), r"shape \[4\], expected \[3\]"),
    (pack({LOWDIM_KEY: np.zeros(3, np.int64)}), "dtype <i8, expected <f4"),
    (pack({LOWDIM_KEY: np.array([0, np.nan, 0], np.float32)}), "non-finite"),
    (msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "|O", b"shape": [0]}), "cannot travel"),
    ("a text frame", "expected a binary msgpack frame"),
    (pack({LOWDIM_KEY: np.zeros(3, np.float32), "prompt": "x" * 5000}), "exceeds this server's limit"),
]


@pytest.mark.parametrize("frame,message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_request_gets_an_error_frame_and_others_are_served(frame, message):
    with ServerThread(echo_base(), port=0, max_request_bytes=4096) as srv:
        bystander = RemoteBasePolicy("127.0.0.1", srv.port, wait=0)  # connected before, served after
        with connect(f"ws://127.0.0.1:{srv.port}", compression=None, max_size=None) as ws:
            unpack(ws.recv())  # metadata
            ws.send(frame)
            text = ws.recv(timeout=5)
            assert isinstance(text, str) and text.startswith("bad request: ")
            assert len(text.splitlines()) == 1 and re.search(message, text)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 1011
        np.testing.assert_array_equal(bystander.infer(obs(3.0))["actions"][:, 0], 3.0 + np.arange(10))
        with RemoteBasePolicy("127.0.0.1", srv.port, wait=0) as nxt:
            assert nxt.infer(obs(1.0))["actions"].shape == (10, 2)
        bystander.close()


def test_our_client_raises_on_error_frames(server):
    with RemoteBasePolicy("127.0.0.1", server.port, wait=0) as client:
        with pytest.raises(BaseServerError, match=r"refused the request: bad request: .*shape \[1\]"):
            client.infer({LOWDIM_KEY: np.zeros(1, np.float32)})


def test_policy_exception_sends_traceback_and_1011():
    def broken(x):
        raise ZeroDivisionError("boom")

    with ServerThread(CallableBase(broken, 3, 2), port=0) as srv, \
            RemoteBasePolicy("127.0.0.1", srv.port, wait=0) as client:
        with pytest.raises(BaseServerError, match="ZeroDivisionError: boom"):
            client.infer(obs())


def test_slow_inference_does_not_block_other_connections():
    with ServerThread(echo_base(delay=1.0), port=0) as srv:
        slow = RemoteBasePolicy("127.0.0.1", srv.port, wait=0)
        t = threading.Thread(target=slow.infer, args=(obs(),))
        t.start()
        time.sleep(0.1)  # the slow inference is running now
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5) as r:
            assert r.status == 200
        other = RemoteBasePolicy("127.0.0.1", srv.port, wait=0)  # handshake + metadata
        handshake_s = time.perf_counter() - t0
        other.infer(obs())  # a second inference runs alongside the first
        both_s = time.perf_counter() - t0
        t.join()
        # a server blocked by the running inference would answer after its remaining ~0.9 s, and serve the
        # second inference only after that: >= 0.9 + 1.0 s
        assert handshake_s < 0.6, handshake_s
        assert both_s < 1.6, both_s
        slow.close()
        other.close()


def test_client_retries_while_the_server_starts():
    port = free_port()
    srv = ServerThread(echo_base(), port=port)
    timer = threading.Timer(0.5, srv.start)
    timer.start()
    try:
        with RemoteBasePolicy("127.0.0.1", port, wait=10) as client:
            assert client.infer(obs(2.0))["actions"][0, 0] == 2.0
    finally:
        timer.join()
        srv.stop()


def test_unreachable_server_is_one_line_naming_host_and_port():
    port = free_port()
    with pytest.raises(BaseUnreachable) as err:
        RemoteBasePolicy("127.0.0.1", port, wait=0.3, connect_timeout=0.5)
    msg = str(err.value)
    assert isinstance(err.value, UserError) and one_line(msg) == msg
    assert f"127.0.0.1:{port}" in msg and "csil-lite serve" in msg


def test_parse_address():
    assert parse_address("localhost:8000") == ("localhost", 8000)
    assert parse_address("ws://10.0.0.2:9") == ("10.0.0.2", 9)
    for bad in ("localhost", ":80", "host:0", "host:http", "host:70000"):
        with pytest.raises(UserError, match="HOST:PORT"):
            parse_address(bad)
