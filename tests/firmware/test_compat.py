from meter.compat import const, ticks_add, ticks_diff
from meter.errors import DecodeError, SmitpError
from fwtest import raises

_X = const(7)


def test_const_is_identity():
    assert _X == 7


def test_ticks_wrap():
    t = ticks_add(0, -1)
    assert ticks_diff(ticks_add(t, 5), t) == 5


def test_decode_error_names_field():
    with raises(SmitpError) as r:
        raise DecodeError("LT", "too short")
    assert r.value.field == "LT"
    assert str(r.value) == "LT: too short"
