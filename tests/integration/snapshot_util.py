"""Writes memory-store snapshot files (proxy_core/store/session_snapshot.h's format) from Python, so that
tests can craft what an attacker with write access to the snapshot directory could."""

import hashlib
import struct


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _frame(tag: bytes, payload: bytes) -> bytes:
    head = tag + struct.pack("<I", len(payload)) + payload
    return head + struct.pack("<I", crc32c(head))


def session_record(token: str, handle: bytes, created_ms: int, last_seen_ms: int,
                   attributes: list[tuple[str, str]]) -> bytes:
    """One 'S' record for the session of `token` (stored under sha256(token))."""
    payload = hashlib.sha256(token.encode()).digest() + handle
    payload += struct.pack("<qqI", created_ms, last_seen_ms, len(attributes))
    for name, value in attributes:
        n, v = name.encode("latin-1"), value.encode("latin-1")
        payload += struct.pack("<II", len(n), len(v)) + n + v
    return _frame(b"S", payload)


def snapshot(records: list[bytes]) -> bytes:
    """A complete snapshot file: header, the records, the end record."""
    header = b"SGSNAP\r\n" + struct.pack("<II", 1, 0)
    header += struct.pack("<I", crc32c(header))
    return header + b"".join(records) + _frame(b"E", struct.pack("<Q", len(records)))
