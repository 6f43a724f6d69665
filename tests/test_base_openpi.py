"""Interop with openpi's own code (PyPI openpi-client 0.1.2, installed by `make install` with --no-deps):
its `WebsocketClientPolicy` + `ActionChunkBroker` against our server, and our client against a server built on
`openpi_client.msgpack_numpy`. These import openpi_client directly: a missing install fails, it is not skipped."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from openpi_client import action_chunk_broker, msgpack_numpy, websocket_client_policy
from websockets.asyncio.server import serve

from csil_lite.base.client import BaseServerError, RemoteBasePolicy
from csil_lite.base.policy import LOWDIM_KEY, CallableBase
from csil_lite.base.server import ServerThread


def numbered_base():
    """Query k answers rows [k, i] for i = 0..9 (k counts from 1)."""
    calls = {"k": 0}

    def chunk(x):
        calls["k"] += 1
        return np.stack([np.full(10, calls["k"], np.float32), np.arange(10, dtype=np.float32)], axis=1)

    return CallableBase(chunk, obs_dim=8, action_dim=2, name="numbered")


def libero_obs(rng) -> dict:
    """What a pi0.5 LIBERO client sends, plus our low-dim key (float64, as real clients send states)."""
    return {LOWDIM_KEY: rng.standard_normal(8), "prompt": "lift the red cube"}


def test_openpi_client_and_broker_get_chunks_from_our_server():
    base = numbered_base()
    rng = np.random.default_rng(0)
    with ServerThread(base, port=0) as srv:
        policy = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=srv.port)
        meta = policy.get_server_metadata()
        assert meta["action_horizon"] == 10 and meta["action_dim"] == 2
        chunk = policy.infer(libero_obs(rng))["actions"]
        assert chunk.shape == (10, 2) and chunk.dtype == np.float32 and np.all(chunk[:, 0] == 1)
        broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=10)
        rows = [broker.infer(libero_obs(rng))["actions"] for _ in range(25)]
        assert base.calls == 1 + 3  # one direct call, then ceil(25 / 10) through the broker
        for t, row in enumerate(rows):
            assert row.shape == (2,) and row[0] == 2 + t // 10 and row[1] == t % 10
        broker.reset()
        assert broker.infer(libero_obs(rng))["actions"][1] == 0 and base.calls == 5
        with pytest.raises(RuntimeError, match="bad request: .*misses required key"):
            policy.infer({"prompt": "no state"})  # our error frame, as openpi's client reports it


def _openpi_style_server(metadata: dict, ready: threading.Event, box: dict):
    """A server written with openpi's msgpack_numpy, as openpi's WebsocketPolicyServer does it."""

    async def handler(ws):
        packer = msgpack_numpy.Packer()
        await ws.send(packer.pack(metadata))
        async for message in ws:
            o = msgpack_numpy.unpackb(message)
            if "fail" in o:
                await ws.send("Traceback: deliberately failed")
                await ws.close(1011, "Internal server error")
                return
            x = np.asarray(o[LOWDIM_KEY], np.float32)
            await ws.send(packer.pack({"actions": np.tile(x[:2], (10, 1)), "server_timing": {"infer_ms": 0.1}}))

    async def main():
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            box["stop"] = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"].wait()

    asyncio.run(main())


def test_our_client_against_an_openpi_msgpack_server():
    meta = {"action_horizon": 10, "action_dim": 2,
            "observation_spec": {LOWDIM_KEY: {"shape": [3], "dtype": "<f4", "required": True}}}
    ready, box = threading.Event(), {}
    t = threading.Thread(target=_openpi_style_server, args=(meta, ready, box), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        with RemoteBasePolicy("127.0.0.1", box["port"], wait=0) as client:
            assert client.metadata == meta
            reply = client.infer({LOWDIM_KEY: np.array([0.25, -0.5, 9.0], np.float32)})
            np.testing.assert_array_equal(reply["actions"], np.tile([0.25, -0.5], (10, 1)))
            assert reply["actions"].dtype == np.float32
        with RemoteBasePolicy("127.0.0.1", box["port"], wait=0) as client:
            with pytest.raises(BaseServerError, match="deliberately failed"):
                client.infer({LOWDIM_KEY: np.zeros(3, np.float32), "fail": True})
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(5)


def test_openpi_client_against_the_csil_lite_serve_command(tmp_path):
    """The real command line: `csil-lite serve --checkpoint DIR` in its own process, queried by openpi's client
    and broker with a LIBERO-style request (two images, float64 state, prompt) plus the stand-in's key."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from csil_lite.base import standin as si

    cfg = si.StandInConfig(obs_dim=6, action_dim=2, hidden=32, embed_dim=16, layers=1)
    si.save_standin(tmp_path / "ck", si.StandInPolicy(cfg, si.init_params(cfg), np.zeros(6), np.ones(6)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "csil_lite.cli", "serve", "--checkpoint", str(tmp_path / "ck"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        client = RemoteBasePolicy("127.0.0.1", port, wait=60)  # ours waits while the server starts up
        client.close()
        policy = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=port)
        assert policy.get_server_metadata()["model"] == si.MODEL_NAME
        broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=10)
        rng = np.random.default_rng(0)
        obs = {LOWDIM_KEY: rng.standard_normal(6), "prompt": "reach the goal",
               "observation/image": np.zeros((224, 224, 3), np.uint8),
               "observation/wrist_image": np.zeros((224, 224, 3), np.uint8), "observation/state": np.zeros(8)}
        chunk = policy.infer(obs)["actions"]
        assert chunk.shape == (10, 2) and chunk.dtype == np.float32 and np.all(np.abs(chunk) <= 1)
        rows = [broker.infer(obs)["actions"] for _ in range(12)]
        assert all(r.shape == (2,) for r in rows)
        assert not np.array_equal(rows[0], rows[10])  # a fresh chunk (new noise) on call 11
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert f"ws://127.0.0.1:{port}" in out and time.time() > 0
