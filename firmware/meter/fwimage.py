# The software-download image and the REPROG payloads: the one place for
# their layouts (project choices: CLC/TS 50568-8 5.7.5 and 9.1.7.1 are not
# public; docs/protocol.md, "Software download").
#
# Image = header (64 bytes) | body (`size` bytes, sent in blocks of `block`).
#   header  magic "SMFW" | format (1) | flags (1) | block size (2) |
#           firmware version (4: major << 16 | minor << 8 | patch) |
#           body size (4) | SHA-256 of the body (32) | seal (16)
#   seal    AES-CMAC under the meter's write key K1 over header[0:48]: only
#           the write-key holder can make it, and it covers the body through
#           its SHA-256. Checking it costs one CMAC of 3 blocks (4 AES).
#   body    file count (2) | per file: name length (1) | name | size (4) | bytes
#           (the application modules compiled by mpy-cross; names such as
#           "meter/app/node.mpy")
# Image ID: the first 4 bytes of the body's SHA-256. Every block carries it,
# so blocks of two images never mix in one slot.
#
# REPROG_LOCAL (100, sent authenticated: 200, ECB under K1):
#   OPEN      0x01 | header (64) [| time (4)]     open a session for this image;
#                                                 time: its activation, as ACTIVATE's
#                                                 (0 or absent: none, ACTIVATE later)
#   BLOCK     0x02 | image ID (4) | index (2) | data
#   MISSING   0x03 | image ID (4) | from index (2) -> ACK-less answer below
#   ACTIVATE  0x04 | image ID (4) | time (4)      0: at once, else at that UTC time
#   ABORT     0x05                                forget the session
#   answer to MISSING: REPROG_LOCAL | 0x83 | image ID (4) | from (2) |
#           received (2) | bitmap from `from` (bit set: kept), as much as fits;
#           from: the first multiple of 8 at or after the index asked whose
#           byte lacks a block (every block before it kept; the bitmap's end
#           and no bitmap: nothing lacks from the index asked)
# REPROG_BROADCAST (101, plain, class S: no answer):
#   image ID (4) | index (2) | data               a block of an open session
import struct

from meter.compat import const
from meter.crypto import Aes, cmac
from meter.errors import DecodeError

MAGIC = b"SMFW"
FORMAT = const(1)
HEADER_LEN = const(64)
SEALED_LEN = const(48)
SEAL_LEN = const(16)
DIGEST_LEN = const(32)
ID_LEN = const(4)
_HEAD = ">4sBBHII"  # magic, format, flags, block size, version, body size (then the digest)
_HEAD_LEN = const(16)
MIN_BLOCK = const(16)
MAX_BLOCK = const(120)  # ATTR + ID + index + 120 bytes: a broadcast block fills an LSDU (128)
MAX_BLOCKS = const(8192)  # a bitmap of 1 KiB at most
MAX_FILES = const(200)
MAX_NAME = const(64)

# REPROG_LOCAL operations
OP_OPEN = const(1)
OP_BLOCK = const(2)
OP_MISSING = const(3)
OP_ACTIVATE = const(4)
OP_ABORT = const(5)
OP_MISSING_RESP = const(0x83)
BLOCK_HEAD = const(6)  # image ID + index before a block's data


class Header:
    """A decoded image header."""

    def __init__(self, block, version, size, digest, seal, flags=0):
        self.block = block
        self.version = version
        self.size = size
        self.digest = bytes(digest)
        self.seal = bytes(seal)
        self.flags = flags

    @property
    def image_id(self):
        return self.digest[0:ID_LEN]

    @property
    def blocks(self):
        return (self.size + self.block - 1) // self.block

    def sealed_part(self):
        return struct.pack(_HEAD, MAGIC, FORMAT, self.flags, self.block, self.version, self.size) + self.digest

    def pack(self):
        return self.sealed_part() + self.seal


def unpack_header(buf, off=0):
    """The Header in buf[off:off+64]; DecodeError names the wrong field."""
    if len(buf) - off < HEADER_LEN:
        raise DecodeError("image header", "%d bytes, %d needed" % (len(buf) - off, HEADER_LEN))
    magic, fmt, flags, block, version, size = struct.unpack_from(_HEAD, buf, off)
    if magic != MAGIC:
        raise DecodeError("image magic", "not a download image")
    if fmt != FORMAT:
        raise DecodeError("image format", "version %d, this meter reads %d" % (fmt, FORMAT))
    if block < MIN_BLOCK or block > MAX_BLOCK:
        raise DecodeError("image block size", "%d out of %d..%d" % (block, MIN_BLOCK, MAX_BLOCK))
    if size < 2 or (size + block - 1) // block > MAX_BLOCKS:
        raise DecodeError("image size", "%d bytes in blocks of %d" % (size, block))
    p = off + _HEAD_LEN
    return Header(block, version, size, buf[p:p + DIGEST_LEN], buf[p + DIGEST_LEN:p + DIGEST_LEN + SEAL_LEN], flags)


def make_seal(k1, header):
    """The seal of a header under the write key K1 (16 bytes, or its Aes
    object as the meter's key store holds it)."""
    return cmac(k1 if isinstance(k1, Aes) else Aes(k1), header.sealed_part())


def seal_ok(k1, header):
    """Constant-time comparison of the header's seal with the one K1 makes."""
    want = make_seal(k1, header)
    diff = 0
    for i in range(SEAL_LEN):
        diff |= want[i] ^ header.seal[i]
    return diff == 0


def version_number(text):
    """"1.2.3" -> 0x010203; DecodeError for anything else."""
    parts = text.split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) != 3 or min(nums) < 0 or max(nums) > 255:
        raise DecodeError("firmware version", "%r is not MAJOR.MINOR.PATCH (0..255 each)" % text)
    return nums[0] << 16 | nums[1] << 8 | nums[2]


def version_text(v):
    return "%d.%d.%d" % (v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF)


def pack_body(files):
    """The body of an image: [(name, bytes)] in a file table."""
    out = [struct.pack(">H", len(files))]
    for name, data in files:
        raw = name.encode()
        out.append(struct.pack(">B", len(raw)) + raw + struct.pack(">I", len(data)) + bytes(data))
    return b"".join(out)


def walk_body(read, size):
    """Yield (name, position, length) of each file of a body; read(pos, n)
    returns n bytes of it. DecodeError when the table does not fit `size`."""
    (count,) = struct.unpack(">H", read(0, 2))
    if count > MAX_FILES:
        raise DecodeError("image files", "%d files" % count)
    pos = 2
    for _ in range(count):
        n = read(pos, 1)[0]
        name = bytes(read(pos + 1, n)).decode()
        if n == 0 or n > MAX_NAME or ".." in name or name.startswith("/"):
            raise DecodeError("image file name", repr(name))
        (length,) = struct.unpack(">I", read(pos + 1 + n, 4))
        pos += 5 + n
        if pos + length > size:
            raise DecodeError("image file", "%s runs past the body" % name)
        yield name, pos, length
        pos += length
    if pos != size:
        raise DecodeError("image body", "%d bytes after the file table" % (size - pos))
