"""PNG files of palette pictures, in pure Python (zlib only).

write_png writes an 8-bit palette image (colour type 3), filter 0 on every
row; read_png reads such files back (any of the five row filters, so a file
re-saved by another tool still compares), for the reference-image tests.
"""

import struct
import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    pass


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(width, height, pixels, palette, scale=1):
    """PNG bytes of a width x height picture; pixels: one palette index per
    pixel, row by row; palette: [(r, g, b), ...]; scale: pixel size."""
    if len(pixels) != width * height:
        raise PngError("%d pixels for %d x %d" % (len(pixels), width, height))
    if not 1 <= len(palette) <= 256:
        raise PngError("a palette holds 1..256 colours")
    rows = []
    for y in range(height):
        row = bytes(pixels[y * width:(y + 1) * width])
        if scale > 1:
            row = bytes(b for b in row for _ in range(scale))
        rows.extend([b"\x00" + row] * scale)
    w, h = width * scale, height * scale
    return b"".join((
        _SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
        _chunk(b"PLTE", b"".join(bytes(c) for c in palette)),
        _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)),
        _chunk(b"IEND", b""),
    ))


def write_png(path, width, height, pixels, palette, scale=1):
    data = encode_png(width, height, pixels, palette, scale)
    with open(path, "wb") as f:
        f.write(data)
    return data


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data):
    """(width, height, palette, pixels) of an 8-bit palette PNG."""
    if data[:8] != _SIGNATURE:
        raise PngError("not a PNG file")
    pos, idat, palette, head = 8, [], [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = [tuple(body[i:i + 3]) for i in range(0, len(body), 3)]
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if head is None or head[2:5] != (8, 3, 0) or head[6] != 0:
        raise PngError("only 8-bit palette PNGs without interlace are read here")
    width, height = head[0], head[1]
    raw = zlib.decompress(b"".join(idat))
    out = bytearray(width * height)
    prev = bytearray(width)
    stride = width + 1
    for y in range(height):
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
        for x in range(width if kind else 0):
            a = line[x - 1] if x else 0
            b, c = prev[x], prev[x - 1] if x else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                line[x] = (line[x] + _paeth(a, b, c)) & 0xFF
            elif kind != 0:
                raise PngError("unknown row filter %d" % kind)
        out[y * width:(y + 1) * width] = line
        prev = line
    return width, height, palette, bytes(out)


def read_png(path):
    with open(path, "rb") as f:
        return decode_png(f.read())
