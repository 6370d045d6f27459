"""The object list longer than the server's long buffer (meter.dlms.assoc.LONG_MAX): with 100
objects more, both independent clients, dlms-cosem and Gurux, read it whole over HLS-GMAC and
suite 0, through the repeater of the demo feeder, in blocks; dlms-cosem's reassembled bytes are
the list encoded at once, and each peer decodes every entry."""

import logging

import pytest
import structlog
from dlms_cosem import cosem
from dlms_cosem import enumerations as E
from dlms_cosem.cosem import Obis
from dlms_cosem.utils import parse_as_dlms_data

from meter.dlms import cosem as C
from meter.dlms.assoc import LONG_MAX
from dlmsfeeder import Feeder
from test_dlms_objlist import extra_objects, reference

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
EXTRA = 100


@pytest.fixture
def feeder(monkeypatch):
    monkeypatch.setattr(C, "OBJECTS", C.OBJECTS + extra_objects(EXTRA))
    return Feeder()


def test_dlms_cosem_reads_a_list_past_the_long_buffer_byte_exact(feeder):
    c = feeder.client()
    with c.session():
        raw = c.get(cosem.CosemAttribute(E.CosemInterface.ASSOCIATION_LN, Obis(0, 0, 40, 0, 0), 2))
    feeder.done(c)
    assert len(raw) > 2 * LONG_MAX
    assert raw == reference(C.MANAGER)
    entries = parse_as_dlms_data(raw)
    assert len(entries) == len(C.OBJECTS)
    assert [(e[0], bytes(e[2])) for e in entries] == [(o[C.O_CLASS], o[C.O_OBIS]) for o in C.OBJECTS]
    last = entries[-1]
    assert bytes(last[2]) == bytes((0, 0, 96, 1, 9 + EXTRA, 255)) and [a[1] for a in last[3][0]] == [1, 1]


def test_gurux_reads_a_list_past_the_long_buffer(feeder):
    from test_dlms_gurux import Driver

    d = Driver(feeder)
    d.associate()
    objs = d.c.parseObjects(d.run([d.c.getObjectsRequest()]).data, True)
    assert len(objs) == len(C.OBJECTS)
    assert [(o.objectType, o.logicalName) for o in objs] == [
        (o[C.O_CLASS], ".".join(map(str, o[C.O_OBIS]))) for o in C.OBJECTS]
    assert objs[-1].getAccess(2) & 1 and objs[0].getAccess(2) == 3  # the clock's time: manager reads and writes
    d.run(d.c.releaseRequest())
