# The Association LN object list (meter/dlms/objlist.py) is streamed, never
# held whole: byte for byte the list encoded at once, read in blocks of any
# size, at every level, also when it is far longer than the server's long
# buffer (assoc.LONG_MAX); the blocks after the first made without allocating.
from meter.dlms import axdr as X
from meter.dlms import cosem as C
from meter.dlms.assoc import LONG_MAX
from meter.dlms.objlist import ENTRY_MAX, ObjectList
from meter.model import registers as R
from fwtest import unhex
from dlmskit import Meter, aarq, glo, initiate, manager, unglo
from test_dlms_server import read_all

GET_LIST = unhex("C0 01 C1 000F 0000280000FF 02 00")
GET_LIST_WITH_LIST = unhex("C0 03 C1 01 000F 0000280000FF 02 00")


def reference(level):
    """The object list encoded at once, as a whole list (the encoding the stream must equal)."""
    w = X.Writer(bytearray(16384))
    w.group(X.ARRAY, len(C.OBJECTS))
    for obj in C.OBJECTS:
        cls = obj[C.O_CLASS]
        w.group(X.STRUCT, 4)
        w.value(X.U16, cls)
        w.value(X.U8, obj[C.O_VERSION])
        w.octets(obj[C.O_OBIS])
        w.group(X.STRUCT, 2)
        w.group(X.ARRAY, C.ATTRS[cls])
        for a in range(1, C.ATTRS[cls] + 1):
            w.group(X.STRUCT, 3)
            w.value(X.S8, a)
            w.value(X.ENUM, (1 if C.may_read(obj, a, level) else 0) | (2 if C.may_write(obj, a, level) else 0))
            C.access_selectors(obj, a, w)
        w.group(X.ARRAY, C.METHODS[cls])
        for m in range(1, C.METHODS[cls] + 1):
            w.group(X.STRUCT, 2)
            w.value(X.S8, m)
            w.value(X.ENUM, 1 if C.may_invoke(obj, m, level) else 0)
    return bytes(w.buf[:w.n])


def extra_objects(n):
    """n more Data objects (0.0.96.1.10+k, the serial number behind them): the list grows past LONG_MAX."""
    return tuple((C.DATA, 0, bytes((0, 0, 96, 1, 10 + k, 255)), C.READER, 0, 0, R.SERIAL) for k in range(n))


class More:
    """C.OBJECTS with `n` objects more, while in use (a meter built inside sees them)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.saved = C.OBJECTS
        C.OBJECTS = C.OBJECTS + extra_objects(self.n)

    def __exit__(self, *exc):
        C.OBJECTS = self.saved
        return False


def _stream(level, chunk):
    ol = ObjectList()
    n = ol.select(level)
    w = X.Writer(bytearray(n))
    for start in range(0, n, chunk):
        ol.emit(w, start, min(chunk, n - start))
    assert w.n == n
    return bytes(w.buf)


def test_streamed_list_is_the_list_encoded_at_once_at_every_level_and_chunk():
    for level in (C.PUBLIC, C.READER, C.MANAGER):
        whole = reference(level)
        for chunk in (1, 7, 64, 1000, len(whole)):
            assert _stream(level, chunk) == whole, (level, chunk)


def test_every_entry_fits_the_entry_buffer():
    ol = ObjectList()
    ol.select(C.MANAGER)
    longest = max(ol._encode(i) for i in range(len(C.OBJECTS)))
    assert 100 < longest <= ENTRY_MAX


def test_a_block_asked_again_from_the_top_is_the_same():
    ol = ObjectList()
    n = ol.select(C.READER)
    w = X.Writer(bytearray(n))
    ol.emit(w, 0, 500)
    ol.emit(w, 500, 500)
    w.n = 0
    ol.emit(w, 0, n)  # before the cursor: from the top
    assert bytes(w.buf) == reference(C.READER)


def test_a_list_past_the_long_buffer_is_read_whole_in_blocks_public_and_ciphered():
    with More(100):
        whole = reference(C.PUBLIC)
        assert len(whole) > LONG_MAX + 1000 and whole[:3] == b"\x01\x81" + bytes((len(C.OBJECTS),))
        m = Meter()
        m.ask(aarq(ui=initiate(max_pdu=256)))
        data, blocks = read_all(m, GET_LIST, 256)
        assert data == whole and blocks > 16
        # the same meter, as the manager: every block ciphered
        mm = Meter()
        manager(mm)
        ic = [2]

        def ask(plain):
            ans = unglo(mm.ask(glo(plain, ic[0])))[0]
            ic[0] += 1
            return ans

        ciphered = More(0)  # any object with an ask()
        ciphered.ask = ask
        data, blocks = read_all(ciphered, GET_LIST, 1200)
        assert data == reference(C.MANAGER) and blocks >= 3
        # an extra object is served as any other
        assert ask(unhex("C0 01 C1 0001 000060010AFF 01 00")) == unhex("C4 01 C1 00 0906 000060010AFF")


def test_a_list_too_long_for_a_get_with_list_is_refused_there_alone():
    m = Meter()
    m.ask(aarq(ui=initiate(max_pdu=1200)))
    whole = reference(C.PUBLIC)
    data, _ = read_all(m, GET_LIST_WITH_LIST, 1200)
    assert data == b"\x01\x00" + whole  # one result: data
    with More(100):
        m = Meter()
        m.ask(aarq(ui=initiate(max_pdu=1200)))
        assert m.ask(GET_LIST_WITH_LIST) == unhex("C4 03 C1 01 01 FA")  # other-reason, the meter serves on
        assert read_all(m, GET_LIST, 1200)[0] == reference(C.PUBLIC)


def test_the_next_blocks_are_made_without_allocating():
    # On MicroPython under heap_lock (any allocation raises MemoryError); on CPython they just run.
    try:
        from micropython import heap_lock, heap_unlock
    except ImportError:
        heap_lock = heap_unlock = lambda: None
    with More(100):
        m = Meter()
        m.ask(aarq(ui=initiate(max_pdu=256)))
        resp = m.resp
        n = m.server.handle(bytearray(GET_LIST), len(GET_LIST), resp)
        req = bytearray(unhex("C0 02 C1 00000001"))
        data = bytearray()
        blocks = 0
        while True:
            size, at = X.get_len(resp, 9, n)
            data += resp[at:at + size]
            blocks += 1
            if resp[3]:
                break
            req[3:7] = resp[4:8]
            heap_lock()
            try:
                n = m.server.handle(req, len(req), resp)
            finally:
                heap_unlock()
        assert blocks > 20 and bytes(data) == reference(C.PUBLIC)
