"""Run logs people already read: every evaluation row of a run as TensorBoard scalars and as a Weights & Biases
run (offline), next to the JSONL the book reads, through the loop's `on_eval` callback.

    from csil_lite.run_logs import TensorBoardLog
    with TensorBoardLog("runs/csil-0/tensorboard") as log:
        train(cfg, "runs/csil-0", on_eval=log)

or `csil-lite train ... --tensorboard` (and `csil-lite sweep ... --tensorboard`), which write to
`RUN_DIR/tensorboard/`; then `tensorboard --logdir runs/`. Needs `tensorboardX` (`pip install csil-lite[logs]`),
which writes TensorBoard's event files without TensorFlow or torch. Every numeric field of a row becomes a scalar
at the row's env step (`step`); `wall_time` is logged as `time/wall_s`.

`WandbLog` (`--wandb`; `pip install csil-lite[logs]`) writes an offline W&B run in `RUN_DIR/wandb/` (no account and
no network: `wandb sync RUN_DIR/wandb/offline-run-*` uploads it later), the run's config as its config and every
row at its env step. `read_wandb_history` reads the rows back from the offline run file.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from numbers import Real
from pathlib import Path
from typing import Any, Callable, Iterator

from csil_lite.errors import UserError


class _Sink:
    """An `on_eval` sink is a context manager that closes itself when the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorBoardLog(_Sink):
    """A callable `on_eval` sink writing each evaluation row's numbers as TensorBoard scalars; close it (or use it
    as a context manager) to flush the event file."""

    def __init__(self, logdir: str | Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise UserError("TensorBoard logs need tensorboardX: `pip install csil-lite[logs]`") from err
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(str(self.logdir))

    def __call__(self, row: dict[str, Any]) -> None:
        step = int(row["step"])
        for name, value in _numbers(row).items():
            self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The row's finite numeric fields (flags and text left out), `wall_time` renamed `time/wall_s`."""
    return {("time/wall_s" if k == "wall_time" else k): float(v) for k, v in row.items()
            if k != "step" and not isinstance(v, bool) and isinstance(v, Real) and math.isfinite(v)}


class WandbLog(_Sink):
    """A callable `on_eval` sink logging each evaluation row to an offline Weights & Biases run, at the row's env
    step; W&B keeps it in `directory`/wandb/offline-run-* (`directory`: the run directory). `config`: the run's
    configuration (plain data)."""

    def __init__(self, directory: str | Path, name: str, config: dict[str, Any] | None = None,
                 project: str = "csil-lite"):
        try:
            import wandb
        except ImportError as err:
            raise UserError("W&B logs need wandb: `pip install csil-lite[logs]`") from err
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(project=project, name=name, dir=str(self.directory), mode="offline",
                               config=config or {}, reinit="create_new",
                               settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))

    def __call__(self, row: dict[str, Any]) -> None:
        self._run.log(_numbers(row), step=int(row["step"]))

    def close(self) -> None:
        self._run.finish()


@contextmanager
def eval_log(run_dir: str | Path, tensorboard: bool, wandb: bool = False,
             config: dict[str, Any] | None = None) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """The `on_eval` sink a run asked for, closed when the block ends: a `TensorBoardLog` in RUN_DIR/tensorboard
    and/or a `WandbLog` in RUN_DIR/wandb (with the run's `config`), or None (no sink) without either."""
    with ExitStack() as stack:
        sinks: list[Callable[[dict[str, Any]], None]] = []
        if tensorboard:
            sinks.append(stack.enter_context(TensorBoardLog(Path(run_dir) / "tensorboard")))
        if wandb:
            sinks.append(stack.enter_context(WandbLog(run_dir, Path(run_dir).name, config)))
        if not sinks:
            yield None
            return

        def both(row: dict[str, Any]) -> None:
            for sink in sinks:
                sink(row)

        yield sinks[0] if len(sinks) == 1 else both


def read_wandb_history(directory: str | Path) -> list[dict[str, Any]]:
    """The logged rows of the newest offline W&B run under `directory` (RUN_DIR/wandb), each {key: value, '_step':
    env step}, read from its `.wandb` file: a 7-byte header, then LevelDB-log framing (32 KiB blocks; each record a
    CRC, a length, a type: full, first, middle or last piece) around `Record` protos; 'history' records are rows."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(directory).glob("wandb/offline-run-*/run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no offline W&B run under {directory}")
    data, pos, block, piece, rows = files[-1].read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        piece += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, or the last piece of one
            record = pb.Record()
            record.ParseFromString(piece)
            piece = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    return rows


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under `logdir`: {tag: [(step, value), ...]} in file order (for tests and
    quick checks without TensorBoard itself). Event files are TFRecords: length, its CRC, an Event proto, its CRC."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((int(event.step), float(v.simple_value)))
    return out
