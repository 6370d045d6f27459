# The project's error types. Decoders raise DecodeError naming the field that
# was wrong; a bad frame is dropped and counted by its caller, never fatal.


class SmitpError(Exception):
    pass


class DecodeError(SmitpError):
    def __init__(self, field, why):
        super().__init__(field, why)
        self.field = field
        self.why = why

    def __str__(self):
        return "%s: %s" % (self.field, self.why)


class Refused(SmitpError):
    """A service refuses a request: the NACK code (meter.attrs NACK_*) and the
    register or item concerned. Raised where the refusal is decided, turned
    into the NACK answer in one place (meter/app/services.py Application.handle)."""

    def __init__(self, code, item=0):
        super().__init__(code, item)
        self.code = code
        self.item = item
