"""Run logs people already read: every evaluation row of a run as TensorBoard scalars, next to the JSONL the book
reads, through the loop's `on_eval` callback.

    from csil_lite.run_logs import TensorBoardLog
    with TensorBoardLog("runs/csil-0/tensorboard") as log:
        train(cfg, "runs/csil-0", on_eval=log)

or `csil-lite train ... --tensorboard` (and `csil-lite sweep ... --tensorboard`), which write to
`RUN_DIR/tensorboard/`; then `tensorboard --logdir runs/`. Needs `tensorboardX` (`pip install csil-lite[logs]`),
which writes TensorBoard's event files without TensorFlow or torch. Every numeric field of a row becomes a scalar
at the row's env step (`step`); `wall_time` is logged as `time/wall_s`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import Any, Callable, Iterator

from csil_lite.errors import UserError


class TensorBoardLog:
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
        for name, value in row.items():
            if name == "step" or isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                continue
            self._writer.add_scalar("time/wall_s" if name == "wall_time" else name, float(value), step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def eval_log(run_dir: str | Path, tensorboard: bool) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """The `on_eval` sink a run asked for, closed when the block ends: a `TensorBoardLog` in RUN_DIR/tensorboard,
    or None (no sink) without `tensorboard`."""
    if not tensorboard:
        yield None
        return
    with TensorBoardLog(Path(run_dir) / "tensorboard") as log:
        yield log


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
