"""docs/data-model.md and the register table cannot drift; every area of
CLC/TS 50568-8 clause 10 has registers; layouts, defaults and event names
agree with the code."""

import struct

from meter.model import events as E
from meter.model import registers as R
from smitp import regmap
from smitp.values import EVENT_NAMES, decode_value, layout_fields, show_value

CLAUSE_10_AREAS = (
    "internal parameters", "total energies", "daily energies", "load profiles and their settings",
    "communication address and keys", "meter identification", "temporal information", "billing period information",
    "software, hardware and security information", "supply contract information (contracts 1 and 2)",
    "weekly tariff information per contract", "annual tariff information per contract", "public holidays",
    "load modulation parameters", "voltage interruption information", "voltage variation information",
    "control information", "normal status word", "extended status word", "cut-off device control information",
    "display management parameters", "download parameters", "measurand profiles and parameters",
    "synchronized measurand registers", "event log", "billing data", "virtual billing data registers",
    "time stamp of maximum power demand", "measurand information", "reading mode management",
    "list of log events",
)


def test_docs_table_matches_the_register_table():
    problems = regmap.check(open(regmap.DOC).read())
    assert not problems, "run `python -m smitp.regmap --write`:\n" + "\n".join(problems)


def test_every_register_in_an_area_and_every_area_has_registers():
    assert len(set(r[R.R_ID] for r in R.TABLE)) == len(R.TABLE)
    used = {}
    for row in R.TABLE:
        area = regmap.area_of(row[R.R_ID])
        assert area in CLAUSE_10_AREAS, "0x%04X is in no clause-10 area" % row[R.R_ID]
        used.setdefault(area, []).append(row[R.R_ID])
    assert set(used) == set(CLAUSE_10_AREAS), set(CLAUSE_10_AREAS) - set(used)
    assert (R.STATUS_WORD, R.SERIAL, R.ACA, R.FIRMWARE_ID, R.POINT_LABEL, R.SECURITY_COUNTERS, R.LMON, R.CLOCK,
            R.ENERGY_IMPORT, R.ENERGY_EXPORT) == (0x003F, 0x0010, 0x0011, 0x0012, 0x0013, 0x0014, 0x0015, 0x0020,
                                                  0x0030, 0x0031)


def test_layouts_defaults_and_rings_agree():
    for reg_id, (fmt, _fields) in R.LAYOUTS.items():
        row = R.BY_ID[reg_id]
        assert row[R.R_ENC] in (R.ENC_STRUCT, R.ENC_TABLE) and struct.calcsize(fmt) == row[R.R_SIZE], hex(reg_id)
        assert len(layout_fields(reg_id)) == len(struct.unpack(fmt, bytes(row[R.R_SIZE]))), hex(reg_id)
        decode_value(reg_id, bytes(row[R.R_SIZE]))
        show_value(reg_id, bytes(row[R.R_SIZE]))
    for row in R.TABLE:
        if row[R.R_ENC] in (R.ENC_STRUCT, R.ENC_TABLE):
            assert row[R.R_ID] in R.LAYOUTS, hex(row[R.R_ID])
        if row[R.R_ENC] == R.ENC_TABLE:
            assert row[R.R_ID] in R.CAPACITY
    for reg_id, value in R.DEFAULTS.items():
        row = R.BY_ID[reg_id]
        assert row[R.R_WRITE] != R.ACC_NONE or row[R.R_READ] == R.ACC_PLAIN, hex(reg_id)
        if isinstance(value, bytes):
            assert len(value) == row[R.R_SIZE] * R.CAPACITY.get(reg_id, 1), hex(reg_id)
    for reg_id, (pages, per, batch) in R.RINGS.items():
        size = R.BY_ID[reg_id][R.R_SIZE]
        assert R.CAPACITY[reg_id] == pages * per and 4 + per * size <= 4096
        # a page appended record by record, or a tail, stays inline in littlefs (<= 128 bytes)
        assert (4 + per * size if not batch else 4 + batch * size) <= 128 and (not batch or per % batch == 0)


def test_every_event_code_has_a_name():
    codes = [getattr(E, n) for n in dir(E) if n.startswith("EV_") and n != "EV_MAX"]
    assert sorted(codes) == list(range(1, E.EV_MAX + 1)) and set(EVENT_NAMES) == set(codes)
