"""openpi's msgpack-numpy frames: every allowed dtype round-trips byte for byte; refused dtypes and garbage fail
with a message; our frames equal openpi's own, byte for byte (openpi-client is installed by `make install`)."""

from __future__ import annotations

import numpy as np
import pytest

from csil_lite.base.wire import WireError, pack, unpack

DTYPES = ["?", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "<f2", "<f4", "<f8", ">f4", ">i4"]


def _sample(dtype: str, shape=(3, 4)) -> np.ndarray:
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.asarray(rng.random(shape) > 0.5)
    if dt.kind == "f":
        return np.asarray(rng.standard_normal(shape) * 1e3).astype(dt)
    info = np.iinfo(dt)
    return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="))).astype(dt)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 5), (2, 1, 3)])
def test_array_round_trip_is_exact(dtype, shape):
    a = _sample(dtype, shape)
    b = unpack(pack({"x": a}))["x"]
    assert b.dtype.str == a.dtype.str and b.shape == a.shape
    assert b.tobytes() == a.tobytes()
    assert not b.flags.writeable  # a view over the frame, as openpi's decoder gives


@pytest.mark.parametrize("dtype", ["?", "u1", "i8", "<f2", "<f4"])
def test_numpy_scalar_round_trip(dtype):
    s = _sample(dtype, ())[()]
    assert isinstance(s, np.generic)
    back = unpack(pack([s]))[0]
    assert type(back) is type(s) and back.tobytes() == s.tobytes()


def test_float64_scalar_travels_as_a_plain_float():
    """np.float64 subclasses Python's float, so msgpack packs it natively (openpi's packer does the same)."""
    back = unpack(pack([np.float64(0.1)]))[0]
    assert type(back) is float and back == 0.1


def test_nested_plain_values_and_non_contiguous_arrays():
    img = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    view = img[:, ::2, ::-1]  # non-contiguous: travels as C-order bytes
    obs = {"images": {"a": view, "b": img[0]}, "prompt": "lift the cube", "n": 3, "f": 0.5, "ok": True,
           "none": None, "list": [1, "two", np.float32(3.0)], "raw": b"\x00\x01"}
    back = unpack(pack(obs))
    np.testing.assert_array_equal(back["images"]["a"], view)
    np.testing.assert_array_equal(back["images"]["b"], img[0])
    assert back["prompt"] == "lift the cube" and back["n"] == 3 and back["f"] == 0.5 and back["ok"] is True
    assert back["none"] is None and back["list"][:2] == [1, "two"] and back["raw"] == b"\x00\x01"


def test_golden_frame():
    """The layout itself (bin keys in openpi's order, dtype.str, shape as an array), not only a round trip."""
    frame = pack(np.array([1, 2], np.uint8))
    assert frame == (b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc4\x02\x01\x02\xc4\x05dtype\xa3|u1"
                     b"\xc4\x05shape\x91\x02")


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array([object()], dtype=object),
                                 np.zeros(2, dtype=[("a", "f4")]), np.complex64(1)])
def test_refused_dtypes(bad):
    with pytest.raises(WireError, match="cannot travel"):
        pack({"x": bad})


def test_garbage_and_bad_records():
    with pytest.raises(WireError, match="not a msgpack document"):
        unpack(b"\xc1 not msgpack")
    with pytest.raises(WireError, match="binary frame"):
        unpack("text")
    import msgpack

    forged = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 3, b"dtype": "<f4", b"shape": [2]})
    with pytest.raises(WireError, match="malformed array record"):
        unpack(forged)
    forged = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 16, b"dtype": "|O", b"shape": [2]})
    with pytest.raises(WireError, match="cannot travel"):
        unpack(forged)


def test_frames_equal_openpi_msgpack_numpy():
    from openpi_client import msgpack_numpy

    obs = {"observation/image": _sample("u1", (8, 8, 3)), "observation/state": _sample("<f8", (8,)),
           "prompt": "x", "s": np.float32(2.5), "nested": {d: _sample(d, (2,)) for d in DTYPES}}
    ours = pack(obs)
    assert ours == msgpack_numpy.packb(obs)
    theirs = msgpack_numpy.unpackb(ours)
    for d in DTYPES:
        assert theirs["nested"][d].tobytes() == obs["nested"][d].tobytes()
    back = unpack(msgpack_numpy.packb(obs))
    assert back["observation/image"].tobytes() == obs["observation/image"].tobytes()
    assert back["s"] == np.float32(2.5) and back["s"].dtype == np.float32
