"""A small Unix `compress` (.Z) writer, so tests can serve .Z files as UCI does.

Block mode, codes from 9 bits up to `max_bits`, no clear codes (the committed fixtures made by
the real `compress` cover those). Width changes pad to the end of the current group of 8
codes, as `compress` does.
"""

from __future__ import annotations


def compress_z(data: bytes, max_bits: int = 16) -> bytes:
    out = bytearray(b"\x1f\x9d" + bytes([0x80 | max_bits]))
    table = {bytes([i]): i for i in range(256)}
    next_code = 257
    bits, buf, nbits, group_start = 9, 0, 0, len(out)

    def emit(code: int) -> None:
        nonlocal buf, nbits
        buf |= code << nbits
        nbits += bits
        while nbits >= 8:
            out.append(buf & 0xFF)
            buf >>= 8
            nbits -= 8

    def widen() -> None:
        nonlocal bits, buf, nbits, group_start
        if nbits:  # flush the partial byte, then pad to a whole group of `bits` bytes
            out.append(buf & 0xFF)
            buf = nbits = 0
        rem = (len(out) - group_start) % bits
        out.extend(b"\0" * ((bits - rem) if rem else 0))
        group_start = len(out)
        bits += 1

    w = b""
    for byte in data:
        wc = w + bytes([byte])
        if wc in table:
            w = wc
            continue
        emit(table[w])
        if next_code < 1 << max_bits:
            table[wc] = next_code
            next_code += 1
            if next_code > 1 << bits and bits < max_bits:
                widen()
        w = bytes([byte])
    if w:
        emit(table[w])
    if nbits:
        out.append(buf & 0xFF)
    return bytes(out)
