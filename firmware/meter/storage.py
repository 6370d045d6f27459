# Non-volatile key/value records: one small file per record in the board's
# storage directory (a littlefs filesystem on the boards). A record is written
# to a temporary file and renamed over the old one; littlefs makes the rename
# atomic, so a power cut leaves either the old or the new record, never half.
import os


class Store:
    """Records by name; `path` None keeps them in RAM (in-process meters)."""

    def __init__(self, path=None):
        self._path = path
        self._ram = {} if path is None else None
        self.writes = 0
        self.faults = 0

    def _file(self, name):
        return "%s/%s" % (self._path, name)

    def get(self, name, default=None):
        if self._ram is not None:
            return self._ram.get(name, default)
        try:
            with open(self._file(name), "rb") as f:
                return f.read()
        except OSError:
            return default

    def put(self, name, data):
        """Store bytes; return False (and count a fault) if the flash refused."""
        return self.put_chunks(name, (data,))

    # ---- records that grow (meter/model/ring.py): littlefs commits an append at
    # close, so a power cut leaves the record as it was before or after it.
    def append(self, name, data):
        """Add bytes at the end of a record; False (a fault counted) if refused."""
        self.writes += 1
        if self._ram is not None:
            self._ram[name] = self._ram.get(name, b"") + bytes(data)
            return True
        try:
            with open(self._file(name), "ab") as f:
                f.write(data)
            return True
        except OSError:
            self.faults += 1
            return False

    def size(self, name):
        """Length of a record, 0 if there is none."""
        if self._ram is not None:
            return len(self._ram.get(name, b""))
        try:
            return os.stat(self._file(name))[6]
        except OSError:
            return 0

    def read_into(self, name, pos, buf):
        """Fill buf from the record's byte `pos` on; return the count read."""
        if self._ram is not None:
            raw = self._ram.get(name, b"")
            n = min(len(buf), max(0, len(raw) - pos))
            buf[0:n] = memoryview(raw)[pos:pos + n]
            return n
        try:
            with open(self._file(name), "rb") as f:
                f.seek(pos)
                return f.readinto(buf) or 0
        except OSError:
            return 0

    # ---- records written in place (a download slot, meter/slots.py): littlefs
    # commits a file at close, so a cut leaves the record before or after the write.
    def write_at(self, name, pos, data):
        """Write bytes at `pos` of a record (created if missing, grown with
        zeros); False (a fault counted) if the flash refused."""
        self.writes += 1
        if self._ram is not None:
            raw = self._ram.get(name)
            if not isinstance(raw, bytearray):  # written in place from now on
                raw = self._ram[name] = bytearray(raw or b"")
            end = pos + len(data)
            if len(raw) < end:
                raw.extend(bytes(end - len(raw)))
            raw[pos:end] = data
            return True
        path = self._file(name)
        try:
            try:
                f = open(path, "r+b")
            except OSError:
                f = open(path, "w+b")
            with f:
                f.seek(pos)
                f.write(data)
            return True
        except OSError:
            self.faults += 1
            return False

    def put_chunks(self, name, chunks):
        """Store a record given in pieces (an iterable of bytes): written to a
        temporary file, then renamed over the old one; False if refused."""
        self.writes += 1
        if self._ram is not None:
            self._ram[name] = b"".join(bytes(c) for c in chunks)
            return True
        tmp = self._file(name + ".new")
        try:
            with open(tmp, "wb") as f:
                for c in chunks:
                    f.write(c)
            os.rename(tmp, self._file(name))
            return True
        except OSError:
            self.faults += 1
            return False

    def folder(self, name):
        """The path of a folder of records (created if missing), None in RAM."""
        if self._ram is not None:
            return None
        path = self._file(name)
        try:
            os.mkdir(path)
        except OSError:
            pass
        return path

    def wipe(self, name):
        """Remove a folder of records and everything under it."""
        if self._ram is not None:
            for k in [k for k in self._ram if k.startswith(name + "/")]:
                del self._ram[k]
            return
        self._wipe(self._file(name))

    def _wipe(self, path):
        try:
            found = os.listdir(path)
        except OSError:
            return
        for n in found:
            p = path + "/" + n
            try:
                is_dir = os.stat(p)[0] & 0x4000
            except OSError:
                continue
            if is_dir:
                self._wipe(p)
            else:
                try:
                    os.remove(p)
                except OSError:
                    pass
        try:
            os.rmdir(path)
        except OSError:
            pass

    def remove(self, name):
        if self._ram is not None:
            self._ram.pop(name, None)
            return
        try:
            os.remove(self._file(name))
        except OSError:
            pass
