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
