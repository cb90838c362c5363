"""Reading and writing IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

An IDX file is: two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import OneClassError
from ..fileio import atomic_open

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype: code for code, dtype in _TYPES.items()}
MAX_ELEMENTS = 2**31  # refuse headers that claim absurd sizes instead of allocating them


class IDXError(OneClassError):
    """An IDX file is malformed: wrong magic number, unknown type, truncated or too long."""


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IDXError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{path}: corrupt gzip data ({exc})") from exc
    return raw


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-endian array."""
    if len(data) < 4:
        raise IDXError(f"{source}: too short for an IDX header ({len(data)} bytes, need >= 4)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IDXError(
            f"{source}: wrong magic number 0x{data[:4].hex()} (an IDX file starts with two zero bytes)"
        )
    if type_code not in _TYPES:
        raise IDXError(f"{source}: unknown IDX type code 0x{type_code:02x}")
    if ndim < 1:
        raise IDXError(f"{source}: IDX header declares {ndim} dimensions, need at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXError(f"{source}: truncated header ({len(data)} bytes, need {header_len})")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    count = int(np.prod(shape, dtype=np.int64))
    if count > MAX_ELEMENTS:
        raise IDXError(f"{source}: header declares {count} values, more than this reader allows")
    dtype = _TYPES[type_code]
    expected = header_len + count * dtype.itemsize
    if len(data) < expected:
        raise IDXError(
            f"{source}: truncated: header declares shape {tuple(shape)} ({expected} bytes) "
            f"but the file has {len(data)} bytes"
        )
    if len(data) > expected:
        raise IDXError(
            f"{source}: {len(data) - expected} unexpected bytes after the data of shape {tuple(shape)}"
        )
    values = np.frombuffer(data, dtype=dtype, count=count, offset=header_len)
    return values.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in _CODES:
        raise OneClassError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, _CODES[big], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    payload = encode_idx(array)
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with atomic_open(path, "wb") as handle:
        handle.write(payload)
