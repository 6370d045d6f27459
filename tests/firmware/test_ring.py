# Rings of records and fixed arrays on a Store (meter/model/ring.py).
import struct

from meter.model.ring import Array, Ring
from meter.storage import Store


def rec(n, size=5):
    return struct.pack(">I", n) + bytes(size - 4)


def numbers(ring):
    out = bytearray(ring.size)
    got = []
    for n in range(ring.first, ring.end):
        ring.read_into(n, out, 0)
        got.append(struct.unpack_from(">I", out, 0)[0])
    return got


def test_inline_ring_wraps_a_page_at_a_time():
    st = Store()
    r = Ring(st, "x", 5, 4, 3)
    for n in range(20):
        assert r.append(rec(n))
    assert r.end == 20 and r.first == 18 - 9  # pages 3..6 kept, the oldest page partly gone
    assert numbers(r) == list(range(r.first, 20))
    again = Ring(st, "x", 5, 4, 3)  # a restart finds the same records
    assert (again.first, again.end) == (r.first, r.end) and numbers(again) == numbers(r)


def test_batched_ring_moves_the_tail_to_the_page():
    st = Store()
    r = Ring(st, "p", 5, 3, 6, batch=3)
    for n in range(16):
        r.append(rec(n))
    assert numbers(r) == list(range(r.first, 16))
    assert st.size("p0") == 4 + 6 * 5  # records 0-5
    assert st.size("pt") == 4 + 1 * 5  # record 15 waits in the tail
    again = Ring(st, "p", 5, 3, 6, batch=3)
    assert (again.first, again.end) == (0, 16) and numbers(again) == list(range(16))
    for n in range(16, 40):
        again.append(rec(n))
    # page 6 (records 36-41) replaced page 3: pages 4, 5 and 6 are kept
    assert again.first == 24 and numbers(again) == list(range(24, 40))
    out = bytearray(5 * 10)
    again.read_run(28, 10, out, 0)  # across a page and into the tail
    assert [struct.unpack_from(">I", out, 5 * i)[0] for i in range(10)] == list(range(28, 38))


def test_cut_between_page_append_and_tail_reset_keeps_each_record_once():
    st = Store()
    r = Ring(st, "p", 5, 3, 6, batch=3)
    for n in range(5):
        r.append(rec(n))
    tail_before = st.get("pt")
    r.append(rec(5))  # fills the tail: records 3-5 go to the page, the tail empties
    st.put("pt", tail_before + rec(5))  # as if the power failed before the tail was emptied
    again = Ring(st, "p", 5, 3, 6, batch=3)
    assert numbers(again) == list(range(6)) and again.end == 6
    again.append(rec(6))
    assert numbers(Ring(st, "p", 5, 3, 6, batch=3)) == list(range(7))


def test_cut_before_the_full_tail_moved_is_finished_at_start_up():
    st = Store()
    r = Ring(st, "p", 5, 3, 6, batch=3)
    for n in range(2):
        r.append(rec(n))
    st.append("pt", rec(2))  # the third record reached the tail, then the power failed
    again = Ring(st, "p", 5, 3, 6, batch=3)
    assert numbers(again) == [0, 1, 2] and st.size("p0") == 4 + 15 and st.size("pt") == 4


def test_reset_empties_and_numbers_go_on():
    st = Store()
    r = Ring(st, "p", 5, 3, 6, batch=3)
    for n in range(8):
        r.append(rec(n))
    r.reset()
    assert len(r) == 0 and r.first == 12
    r.append(rec(99))
    again = Ring(st, "p", 5, 3, 6, batch=3)
    assert (again.first, again.end) == (12, 13) and numbers(again) == [99]


def test_refused_append_is_not_counted():
    class Full(Store):
        def append(self, name, data):
            self.faults += 1
            return False

    r = Ring(Full(), "x", 5, 2, 3)
    assert r.append(rec(0))  # a new page is a put
    assert not r.append(rec(1)) and r.end == 1 and r.faults == 1


def test_array_write_reset_and_restart():
    st = Store()
    a = Array(st, "t", 3, 4, bytes(range(12)))
    assert a.write(1, b"xxabcdef", 2, 2)
    assert bytes(a.data) == bytes((0, 1, 2)) + b"abcdef" + bytes((9, 10, 11))
    assert bytes(Array(st, "t", 3, 4, bytes(12)).data) == bytes(a.data)
    a.reset()
    assert bytes(Array(st, "t", 3, 4, bytes(12)).data) == bytes(range(12))
