# SET and ACTION with block transfer of the request (EN 62056-5-3): the
# request APDUs as gurux-dlms encodes them (pinned here byte for byte; the
# host test test_dlms_blocks_gurux.py checks that Gurux still encodes them so
# and decodes the meter's answers), the answers, and every refusal.
from meter.dlms import server as S
from meter.model import registers as R
from fwtest import unhex
from dlmskit import F_CTOS, F_STOC, REPLY_TO_HLS, Meter, aarq, f_stoc, glo, hls_aarq, initiate, manager, unglo

# Gurux, its maxPduSize at 24: SET of the clock to 2026-03-01 08:30:00 UTC in two blocks
SET_FIRST = unhex("C1 02 C1 0008 0000010000FF 02 00 00 00000001 05 090C07EA03")
SET_NEXT = unhex("C1 03 C1 01 00000002 09 01FF081E0000000000")
SET_T = 1772353800
# Gurux, the same PDU size: the reply to HLS (Association LN method 1, f(StoC)) in two blocks
ACTION_FIRST = unhex("C3 04 C1 000F 0000280000FF 01 00 00000001 06 0911") + F_STOC[:4]
ACTION_NEXT = unhex("C3 06 C1 01 00000002 0D") + F_STOC[4:]


def _manager():
    m = Meter()
    manager(m)
    return m, [2]  # the client's next invocation counter


def _ask(m, ic, plain):
    ans = unglo(m.ask(glo(plain, ic[0])))[0]
    ic[0] += 1
    return ans


def test_set_in_two_blocks_as_gurux_sends_it():
    m, ic = _manager()
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")  # Set-Response-Datablock
    assert m.t != SET_T  # nothing applied before the last block
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 00 00000002")  # Set-Response-Last-Datablock: success
    assert m.t == SET_T and m.model.get(R.CLOCK) == SET_T


def _blocks(data, size, head):
    """A SET of `data` (one Data) cut into raw-data blocks of `size` bytes."""
    out = []
    for k in range(0, len(data), size):
        last = 1 if k + size >= len(data) else 0
        part = data[k:k + size]
        n = k // size + 1
        body = bytes((last,)) + n.to_bytes(4, "big") + bytes((len(part),)) + part
        out.append((head if n == 1 else unhex("C1 03 C1")) + body)
    return out


def test_set_in_one_byte_blocks():
    m, ic = _manager()
    value = unhex("090C 07EA0101040C0000000000 00")
    blocks = _blocks(value, 1, unhex("C1 02 C1 0008 0000010000FF 02 00"))
    for n, b in enumerate(blocks[:-1]):
        assert _ask(m, ic, b) == unhex("C5 02 C1") + (n + 1).to_bytes(4, "big")
    assert _ask(m, ic, blocks[-1]) == unhex("C5 03 C1 00") + len(blocks).to_bytes(4, "big")
    assert m.t == 1767268800


def test_set_block_refusals():
    m, ic = _manager()
    head = unhex("C1 02 C1 0008 0000010000FF 02 00")
    # a next block with nothing in progress: no-long-set-in-progress
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 12 00000002")
    # a first block numbered 2: data-block-number-invalid
    assert _ask(m, ic, head + unhex("00 00000002 01 09")) == unhex("C5 03 C1 13 00000002")
    # a block skipped: data-block-number-invalid, and the transfer is over
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    assert _ask(m, ic, unhex("C1 03 C1 00 00000003 01 01")) == unhex("C5 03 C1 13 00000003")
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 12 00000002")
    # a block repeated is out of order too
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    assert _ask(m, ic, unhex("C1 03 C1 00 00000001 01 01")) == unhex("C5 03 C1 13 00000001")
    # another request ends a SET in blocks
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    assert _ask(m, ic, unhex("C0 01 C1 0008 0000010000FF 02 00"))[:4] == unhex("C4 01 C1 00")
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 12 00000002")
    # longer than the meter takes: long-set-aborted
    big = b"\x00" * 500
    for n in range(1, 5):
        first = head if n == 1 else unhex("C1 03 C1")
        assert _ask(m, ic, first + b"\x00" + n.to_bytes(4, "big") + unhex("8201F4") + big) == \
            unhex("C5 02 C1") + n.to_bytes(4, "big")
    assert _ask(m, ic, unhex("C1 03 C1 00 00000005 8201F4") + big) == unhex("C5 03 C1 11 00000005")
    # what the blocks make is not one Data: type-unmatched, the clock unchanged
    t = m.t
    assert _ask(m, ic, head + unhex("01 00000001 03 090C07")) == unhex("C5 03 C1 0C 00000001")
    assert _ask(m, ic, head + unhex("01 00000001 03 0F0101")) == unhex("C5 03 C1 0C 00000001")
    # a read-only attribute, an unknown object: refused on the first block
    assert _ask(m, ic, unhex("C1 02 C1 0003 0100010800FF 02 00 00 00000001 01 06")) == \
        unhex("C5 03 C1 03 00000001")
    assert _ask(m, ic, unhex("C1 02 C1 0008 0000010000FE 02 00 00 00000001 01 06")) == \
        unhex("C5 03 C1 04 00000001")
    # truncated block headers: an exception-response (in clear), the meter keeps serving
    for bad in ("C1 02 C1 0008 0000010000FF 02 00 00 0000", "C1 03 C1 01 00000002 09 01FF"):
        assert m.ask(glo(unhex(bad), ic[0])) == bytes((S.EXCEPTION_RESPONSE, 2, 3))
        ic[0] += 1
    assert m.t == t
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 00 00000002") and m.t == SET_T


def test_block_transfer_only_when_negotiated_and_only_for_the_manager():
    m = Meter()
    m.ask(aarq(ui=initiate(conformance=0x00101D)))  # get, set, action, block GET: no block SET/ACTION
    assert m.ask(SET_FIRST) == unhex("D8 02 02")  # service-unknown, service-not-supported
    assert m.ask(ACTION_FIRST) == unhex("D8 02 02")
    m.ask(aarq())
    assert m.ask(SET_FIRST) == unhex("C5 03 C1 03 00000001")  # public: read-write-denied
    disconnect = unhex("C3 04 C1 0046 00006003 0AFF 01 01 00000001 02 0F00")
    assert m.ask(disconnect) == unhex("C7 01 C1 03 00")


def test_reply_to_hls_in_two_blocks_gives_the_green_book_f_ctos():
    m = Meter()
    m.server.ic = m.server.ic_end = 0x01234564  # f(CtoS) takes 01234567, as in the Green Book
    assert m.ask(hls_aarq())[0] == 0x61
    ans, ic = unglo(m.ask(glo(ACTION_FIRST, 2)))
    assert ans == unhex("C7 04 C1 00000001")  # Action-Response-Next-Pblock
    ans, ic = unglo(m.ask(glo(ACTION_NEXT, 3)))
    assert ans == unhex("C7 01 C1 00 01 00 09 11") + F_CTOS and ic == 0x01234568


def test_action_block_refusals():
    m, ic = _manager()
    disconnect = unhex("C3 04 C1 0046 00006003 0AFF 01")
    # no cut-off engine behind this bare data model: object-unavailable, after both blocks
    assert _ask(m, ic, disconnect + unhex("00 00000001 01 0F")) == unhex("C7 04 C1 00000001")
    assert _ask(m, ic, unhex("C3 06 C1 01 00000002 01 00")) == unhex("C7 01 C1 0B 00")
    # no transfer in progress: no-long-action-in-progress; a block skipped: long-action-aborted
    assert _ask(m, ic, unhex("C3 06 C1 01 00000002 01 00")) == unhex("C7 01 C1 10 00")
    assert _ask(m, ic, unhex("C3 02 C1 00000001")) == unhex("C7 01 C1 10 00")
    assert _ask(m, ic, disconnect + unhex("00 00000001 01 0F")) == unhex("C7 04 C1 00000001")
    assert _ask(m, ic, unhex("C3 06 C1 01 00000003 01 00")) == unhex("C7 01 C1 0F 00")
    # a method the manager may not invoke; not one Data
    assert _ask(m, ic, unhex("C3 04 C1 0046 00006003 0AFF 03 01 00000001 02 0F00")) == unhex("C7 01 C1 03 00")
    assert _ask(m, ic, disconnect + unhex("01 00000001 01 0F")) == unhex("C7 01 C1 0C 00")
    # the reply to HLS outside its moment: denied, the association stays
    assert _ask(m, ic, ACTION_FIRST) == unhex("C7 04 C1 00000001")
    assert _ask(m, ic, ACTION_NEXT) == unhex("C7 01 C1 03 00")
    assert _ask(m, ic, unhex("C0 01 C1 0008 0000010000FF 02 00"))[:4] == unhex("C4 01 C1 00")


def test_a_power_cut_between_blocks_changes_nothing():
    m, ic = _manager()
    t = m.t
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    again = Meter(store=m.store)  # power cut: the same flash, the RAM gone
    again.t = t
    n = again.server.cic + 1  # the client goes on above its last counter
    assert again.ask(hls_aarq(n))[0] == 0x61
    reply = unglo(again.ask(glo(REPLY_TO_HLS[:-17] + f_stoc(n + 1), n + 1)))[0]
    assert reply[:4] == unhex("C7 01 C1 00")
    ic = [n + 2]
    assert _ask(again, ic, SET_NEXT) == unhex("C5 03 C1 12 00000002") and again.t == t  # no-long-set-in-progress


def test_a_stranger_cannot_end_or_feed_a_manager_transfer():
    m, ic = _manager()
    assert _ask(m, ic, SET_FIRST) == unhex("C5 02 C1 00000001")
    # in clear, or ciphered under a wrong key: refused before the service, the transfer untouched
    assert m.ask(SET_NEXT) == unhex("D8 01 01")
    assert m.ask(unhex("C0 01 C1 0008 0000010000FF 02 00")) == unhex("D8 01 01")
    assert m.ask(glo(unhex("C1 03 C1 01 00000002 09 01FF081E00000000FF"), ic[0], ek=bytes(16)))[:3] == \
        unhex("D8 01 05")
    assert _ask(m, ic, SET_NEXT) == unhex("C5 03 C1 00 00000002") and m.t == SET_T
