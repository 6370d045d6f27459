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
        self.writes += 1
        if self._ram is not None:
            self._ram[name] = bytes(data)
            return True
        tmp = self._file(name + ".new")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, self._file(name))
            return True
        except OSError:
            self.faults += 1
            return False
