"""Unix `compress` (.Z) archives unpacked, for UCI files that are only published that way.

In: the bytes of a .Z file. Out: the original bytes, or `DataError` for anything that is not a
complete, valid LZW stream. Python's standard library reads gzip, bzip2 and xz but not this
1980s format, and UCI still serves optdigits' original bitmaps as `.Z`.
"""

from __future__ import annotations

from training.fetch import DataError

MAGIC = b"\x1f\x9d"
CLEAR = 256  # in block mode, this code empties the table


def _aligned(pos: int, mark: int, bits: int) -> int:
    """compress reads codes in groups of 8 (`bits` bytes); a width change or a clear skips the
    rest of the group, counted from where the current width started (`mark`)."""
    rem = (pos - mark) % bits
    return pos + (bits - rem if rem else 0)


def unlzw(data: bytes, name: str = "data") -> bytes:
    """Decompress a .Z file."""
    if len(data) < 3 or data[:2] != MAGIC:
        raise DataError(f"{name}: not a .Z (compress) file")
    max_bits, block = data[2] & 0x1F, bool(data[2] & 0x80)
    if data[2] & 0x60 or not 9 <= max_bits <= 16:
        raise DataError(f"{name}: unsupported .Z header 0x{data[2]:02x}")
    base = [bytes([i]) for i in range(256)] + ([b""] if block else [])
    table = list(base)
    out = bytearray()
    pos = mark = 3
    bits, buf, left = 9, 0, 0
    prev: bytes | None = None
    while True:
        if len(table) >= (1 << bits) and bits < max_bits:  # the table is full at this width
            pos, buf, left, mark, bits = _aligned(pos, mark, bits), 0, 0, _aligned(pos, mark, bits), bits + 1
        if pos >= len(data):
            break
        buf |= data[pos] << left
        pos, left = pos + 1, left + 8
        if left < bits:
            if pos >= len(data):
                raise DataError(f"{name}: truncated .Z stream")
            buf |= data[pos] << left
            pos, left = pos + 1, left + 8
        code = buf & ((1 << bits) - 1)
        buf, left = buf >> bits, left - bits
        if block and code == CLEAR:
            pos = mark = _aligned(pos, mark, bits)
            buf, left, bits, table, prev = 0, 0, 9, list(base), None
            continue
        if code < len(table) and not (block and code == CLEAR):
            entry = table[code]
        elif code == len(table) and prev is not None:
            entry = prev + prev[:1]
        else:
            raise DataError(f"{name}: corrupt .Z stream (code {code} at byte {pos})")
        out += entry
        if prev is not None and len(table) < (1 << bits):
            table.append(prev + entry[:1])
        prev = entry
    return bytes(out)
