"""Base policies: large behaviour models (pi0.5 over openpi's websocket protocol, or a CPU stand-in) that propose
action chunks, and the machinery to run them.

    policy.py   `BasePolicy` protocol, observation spec checks, `ChunkExecutor` (a chunk every N steps)
    wire.py     openpi's msgpack-numpy frames, byte-compatible with `openpi_client.msgpack_numpy`
    server.py   `PolicyServer` / `ServerThread`: serve any `BasePolicy` (metadata first, /healthz, errors 1011)
    client.py   `RemoteBasePolicy`: the client side, with retries and one-line errors
    standin.py  the flow-matching stand-in (pi0's recipe), its training and checkpoints
    env.py      `ChunkedBaseEnv` (gymnasium wrapper) and `evaluate_base`
    cli.py      `csil-lite serve | lbm train | evaluate --base | demos export-lerobot`

Submodules are imported on demand: `wire`, `server` and `client` need the `serve` extra (websockets, msgpack),
`standin` needs JAX.
"""
