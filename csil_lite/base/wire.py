"""openpi's wire format: msgpack with numpy arrays as marker maps, written here so both ends interoperate.

One websocket frame carries one msgpack document. Plain Python values (dict, list, str, int, float, bool, None,
bytes) are msgpack's own types. A numpy array travels as a map with *binary* keys::

    {b"__ndarray__": True, b"data": <C-order raw bytes>, b"dtype": dtype.str (e.g. "<f4", "|u1"), b"shape": [...]}

and a numpy scalar as ``{b"__npgeneric__": True, b"data": value.item(), b"dtype": dtype.str}``. The key order
and types are those of ``openpi_client.msgpack_numpy``, so a frame packed here is byte for byte the frame
openpi's client packs (a test checks it). Object, structured (void) and complex dtypes are refused on both ends,
as openpi does: nothing is ever pickled.

A ``np.float64`` scalar is a Python float to msgpack and arrives as a plain float (openpi's packer does the
same); 0-d arrays keep their dtype.

Decoded arrays are views over the received bytes and therefore **read-only**, as openpi's are; copy one
(`np.array(x)`) before writing into it.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

__all__ = ["ALLOWED_KINDS", "WireError", "pack", "unpack"]

# numpy dtype kinds that may travel: bool, signed/unsigned int, float. Not object (O), void (V), complex (c),
# nor strings/datetimes (U, S, M, m), which openpi never sends as arrays.
ALLOWED_KINDS = frozenset("biuf")


class WireError(ValueError):
    """A frame that is not a valid openpi message (not msgpack, a bad array record, a refused dtype)."""


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in ALLOWED_KINDS:
        raise WireError(f"{where}: dtype {dtype.str!r} (kind {dtype.kind!r}) cannot travel; allowed kinds are "
                        "bool, int, uint and float")


def _encode(obj: Any) -> Any:
    """msgpack `default` hook: numpy arrays and scalars -> openpi's marker maps."""
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype, "pack: array")
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype, "pack: numpy scalar")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"pack: cannot encode a {type(obj).__name__}; send dicts, lists, str, numbers, bytes or "
                    "numpy arrays")


def _decode(obj: dict) -> Any:
    """msgpack `object_hook`: marker maps -> numpy arrays / scalars (read-only views for arrays)."""
    if b"__ndarray__" in obj:
        try:
            dtype = np.dtype(obj[b"dtype"])
            _check_dtype(dtype, "unpack: array")
            shape = tuple(int(s) for s in obj[b"shape"])
            return np.ndarray(buffer=obj[b"data"], dtype=dtype, shape=shape)
        except WireError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise WireError(f"unpack: malformed array record ({type(e).__name__}: {e})") from None
    if b"__npgeneric__" in obj:
        try:
            dtype = np.dtype(obj[b"dtype"])
            _check_dtype(dtype, "unpack: numpy scalar")
            return dtype.type(obj[b"data"])
        except WireError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise WireError(f"unpack: malformed numpy scalar record ({type(e).__name__}: {e})") from None
    return obj


def pack(obj: Any) -> bytes:
    """`obj` (nested dicts/lists of Python values and numpy arrays) as one openpi msgpack frame."""
    return msgpack.packb(obj, default=_encode)


def unpack(data: bytes) -> Any:
    """One openpi msgpack frame back to Python/numpy values; `WireError` if it is not valid msgpack."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"unpack: expected a binary frame, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_decode)
    except WireError:
        raise
    except (msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError, msgpack.exceptions.StackError,
            ValueError, TypeError) as e:
        raise WireError(f"not a msgpack document ({type(e).__name__}: {e})") from None
