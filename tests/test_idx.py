import contextlib
import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oneclass.data.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_roundtrip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) % 100).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"x-idx3-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_header_layout_matches_the_standard():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert data[4:8] == (2).to_bytes(4, "big") and data[8:12] == (28).to_bytes(4, "big")


def test_wrong_magic_is_named(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(IDXError, match=r"bad: wrong magic number"):
        read_idx(path)


def test_truncated_data_is_named(tmp_path):
    data = encode_idx(np.zeros((10, 4, 4), np.uint8))
    path = tmp_path / "t.idx"
    path.write_bytes(data[:-5])
    with pytest.raises(IDXError, match=r"t.idx: truncated"):
        read_idx(path)


def test_trailing_bytes_and_unknown_type():
    with pytest.raises(IDXError, match="unexpected bytes"):
        parse_idx(encode_idx(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(IDXError, match="unknown IDX type code 0x07"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(10, np.uint8)))[:-8] + b"garbage!")
    with pytest.raises(IDXError, match="x.gz"):
        read_idx(path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_idx_error(data):
    with contextlib.suppress(IDXError):
        parse_idx(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=3), st.integers(-3, 3))
def test_header_and_length_mismatch_always_detected(shape, delta):
    payload = encode_idx(np.zeros(shape, np.uint8))
    cut = payload + b"\x00" * delta if delta > 0 else payload[: len(payload) + delta]
    if delta == 0:
        assert parse_idx(cut).shape == tuple(shape)
    else:
        with pytest.raises(IDXError):
            parse_idx(cut)
