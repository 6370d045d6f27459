# LMON persistence, key storage and the response cache (meter.app.lmon).
#
# Power cuts are simulated with a RAM Store whose k-th write misbehaves, then
# a new LmonCounter is built over the same records, as a reboot would.
from meter.app import security as sec
from meter.app.lmon import LMON_MAX, RESERVE, KeyStore, LmonCounter, LmonError, ResponseCache
from meter.storage import Store
from fwtest import Rng, raises, unhex

K1 = unhex("000102030405060708090a0b0c0d0e0f")
K2 = unhex("AA55AA55AA55AA55AA55AA55AA55AA55")
ACA = unhex("A8040A1E8984")
A_AIR = unhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")  # reference 8.2 A, CMON 6
B_AIR = unhex("67B54F5B52C5E6A0AAA4BA4107C6B52AD4E0ED6956C2068568")  # its answer


class PowerCut(Exception):
    pass


class FaultyStore(Store):
    """RAM Store whose write number `at` (counted from arm()) misbehaves:
    "fail"    the flash refuses: put returns False, nothing written;
    "lost"    the power fails before the record lands;
    "landed"  the record lands, the power fails before put returns;
    "removed" the power fails after the old record was removed (FAT's
              rename over an existing file) and before the new one landed;
    "torn"    half the record lands, then the power fails."""

    def __init__(self):
        Store.__init__(self)
        self.arm(0)

    def arm(self, at, mode="fail"):
        self.at = at
        self.mode = mode
        self.count = 0

    def put(self, name, data):
        self.count += 1
        if self.count != self.at:
            return Store.put(self, name, data)
        mode = self.mode
        if mode == "fail":
            self.faults += 1
            return False
        if mode == "landed":
            Store.put(self, name, data)
        elif mode == "removed":
            self._ram.pop(name, None)
        elif mode == "torn":
            Store.put(self, name, bytes(data)[0 : len(data) // 2])
        raise PowerCut()


def _accept(ctr, n, accepted):
    # Run n messages through the counter as the meter would.
    for _ in range(n):
        c = ctr.candidate()
        if ctr.commit():
            assert ctr.value == c
            accepted.append(c)
        else:
            assert ctr.value == c - 1


# ---- candidate / commit ------------------------------------------------------


def test_candidate_and_commit():
    ctr = LmonCounter(Store())
    assert ctr.value == 0 and ctr.candidate() == 1
    assert ctr.candidate() == 1  # asking twice changes nothing
    assert ctr.commit()
    assert ctr.value == 1 and ctr.candidate() == 2
    for _ in range(200):
        assert ctr.commit()
    assert ctr.value == 201


def test_default_reserve():
    assert RESERVE == 64
    store = Store()
    ctr = LmonCounter(store)
    _accept(ctr, 64, [])
    assert store.writes == 1
    _accept(ctr, 1, [])
    assert store.writes == 2


def test_ceiling_written_every_reserve_messages():
    store = Store()
    ctr = LmonCounter(store, reserve=8)
    wrote_at = []
    for i in range(1, 41):
        before = store.writes
        assert ctr.commit()
        if store.writes != before:
            wrote_at.append(i)
            assert ctr.ceiling == i - 1 + 8
    assert wrote_at == [1, 9, 17, 25, 33]  # ceil(40 / 8) writes
    assert ctr.writes == 5


def test_boot_starts_at_the_ceiling():
    store = Store()
    ctr = LmonCounter(store, reserve=10)
    _accept(ctr, 3, [])
    assert ctr.value == 3 and ctr.ceiling == 10
    ctr = LmonCounter(store, reserve=10)
    assert ctr.value == 10 and ctr.candidate() == 11  # 4..10 are skipped
    assert store.writes == 1  # booting writes nothing
    assert ctr.commit() and store.writes == 2 and ctr.ceiling == 20


def test_initial_value_when_nothing_stored():
    store = Store()
    ctr = LmonCounter(store, initial=1000)
    assert ctr.value == 1000 and store.writes == 0
    assert ctr.commit() and ctr.value == 1001
    # Once a record exists, `initial` no longer matters.
    assert LmonCounter(store, initial=0).value == 1001 - 1 + RESERVE


def test_set_persists_at_once_and_may_lower():
    store = Store()
    ctr = LmonCounter(store)
    _accept(ctr, 5, [])
    assert ctr.set(1 << 40)
    assert ctr.value == 1 << 40 and ctr.candidate() == (1 << 40) + 1
    assert LmonCounter(store).value == 1 << 40
    assert ctr.set(7)  # provisioning may lower LMON (trusted path only)
    assert LmonCounter(store).value == 7
    for bad in (-1, LMON_MAX + 1):
        with raises(ValueError):
            ctr.set(bad)
    with raises(ValueError):
        LmonCounter(store, reserve=0)
    with raises(ValueError):
        LmonCounter(Store(), initial=-1)


def test_uint64_top_is_reached_then_refused():
    store = Store()
    ctr = LmonCounter(store, reserve=64)
    assert ctr.set(LMON_MAX - 3)
    for _ in range(3):
        assert ctr.commit()
    assert ctr.value == LMON_MAX and ctr.ceiling == LMON_MAX
    with raises(LmonError):
        ctr.candidate()
    with raises(LmonError):
        ctr.commit()
    assert LmonCounter(store).value == LMON_MAX


# ---- flash failures and power cuts -------------------------------------------


def test_flash_failure_refuses():
    store = FaultyStore()
    ctr = LmonCounter(store, reserve=4)
    store.arm(1, "fail")
    assert not ctr.commit()  # the ceiling could not be written: refuse
    assert ctr.value == 0 and ctr.refused == 1 and store.faults == 1
    assert ctr.commit() and ctr.value == 1  # the flash came back
    store.arm(1, "fail")
    assert ctr.set(50) is False and ctr.value == 1
    assert LmonCounter(store, reserve=4).value == 4


def test_flash_failure_inside_the_reserve_still_accepts():
    store = FaultyStore()
    ctr = LmonCounter(store, reserve=4)
    assert ctr.commit()
    store.arm(1, "fail")  # no write needed for 2..4
    for _ in range(3):
        assert ctr.commit()
    assert not ctr.commit()  # 5 needs the write that now fails
    assert ctr.value == 4


def test_power_cut_at_every_write_never_reaccepts():
    # Each run: boot, accept messages, and cut the power at write k in the
    # given way; reboot over the same records and go on, three cuts a run.
    # 13 messages with reserve 4 write at messages 1, 5, 9 and 13.
    reserve = 4
    for mode in ("lost", "landed", "removed", "fail"):
        for k in range(1, 5):
            store = FaultyStore()
            accepted = []
            cuts = 0
            for _boot in range(4):
                store.arm(k, mode)
                ctr = LmonCounter(store, reserve)
                assert not ctr.fault, (mode, k)
                if accepted:
                    assert ctr.value >= accepted[-1], (mode, k)
                try:
                    _accept(ctr, 3 * reserve + 1, accepted)
                except PowerCut:
                    cuts += 1
            assert cuts == (0 if mode == "fail" else 4)
            store.arm(0)
            ctr = LmonCounter(store, reserve)
            _accept(ctr, 2, accepted)  # never bricked
            for i in range(1, len(accepted)):
                assert accepted[i] > accepted[i - 1], (mode, k, accepted)
            assert len(accepted) >= 2


def test_torn_record_is_survived():
    # Outside the Store contract (it renames a complete temporary file), but
    # a damaged record must still not reopen replay: the other slot bounds it.
    reserve = 4
    for k in range(1, 5):
        store = FaultyStore()
        accepted = []
        _accept(LmonCounter(store, reserve), 1, accepted)  # first record written
        store.arm(k, "torn")
        with raises(PowerCut):
            _accept(LmonCounter(store, reserve), 4 * reserve, accepted)
        store.arm(0)
        ctr = LmonCounter(store, reserve)
        assert not ctr.fault and ctr.value >= accepted[-1], k
        _accept(ctr, 1, accepted)
        assert accepted[-1] > accepted[-2]


def test_torn_first_record_faults_until_set():
    # No readable record at all: the ceiling is unknown, so refuse, not guess.
    store = FaultyStore()
    store.arm(1, "torn")
    with raises(PowerCut):
        LmonCounter(store).commit()
    store.arm(0)
    ctr = LmonCounter(store)
    assert ctr.fault and not ctr.commit()
    assert ctr.set(0) and ctr.commit() and ctr.value == 1


def test_power_cut_between_any_two_messages():
    reserve = 5
    for stop in range(0, 3 * reserve + 2):
        store = Store()
        accepted = []
        _accept(LmonCounter(store, reserve), stop, accepted)
        ctr = LmonCounter(store, reserve)  # power back
        last = accepted[-1] if accepted else 0
        assert ctr.value >= last
        assert ctr.value - last <= reserve  # the skipped range is bounded
        _accept(ctr, 1, accepted)
        assert accepted[-1] > last


def test_worst_case_skip_is_reserve():
    store = FaultyStore()
    ctr = LmonCounter(store, reserve=16)
    _accept(ctr, 16, [])
    store.arm(1, "landed")  # ceiling 32 written, message 17 never accepted
    with raises(PowerCut):
        ctr.commit()
    assert LmonCounter(store, reserve=16).value == 32  # 17..32 skipped


def test_random_cuts_soak():
    rng = Rng(7)
    modes = ("lost", "landed", "removed", "torn", "fail")
    store = FaultyStore()
    accepted = []
    _accept(LmonCounter(store), 1, accepted)  # see test_torn_first_record...
    for _ in range(60):
        store.arm(1 + rng.below(3), modes[rng.below(len(modes))])
        ctr = LmonCounter(store, 1 + rng.below(6))
        assert not ctr.fault
        if accepted:
            assert ctr.candidate() > accepted[-1]
        try:
            _accept(ctr, rng.below(20), accepted)
        except PowerCut:
            pass
    for i in range(1, len(accepted)):
        assert accepted[i] > accepted[i - 1]
    assert len(accepted) > 100


def test_unreadable_records_fault_until_set():
    store = Store()
    store.put("lmon0", b"\xff" * 16)
    store.put("lmon1", b"short")
    ctr = LmonCounter(store)
    assert ctr.fault
    assert not ctr.commit() and ctr.refused == 1
    assert ctr.set(300)
    assert not ctr.fault and ctr.commit() and ctr.value == 301
    again = LmonCounter(store)
    assert not again.fault and again.value == 300 + RESERVE


def test_one_damaged_slot_falls_back_to_the_other():
    store = Store()
    ctr = LmonCounter(store, reserve=4)
    _accept(ctr, 5, [])  # two writes: ceilings 4 (lmon0) and 8 (lmon1)
    assert LmonCounter(store, reserve=4).value == 8
    store.put("lmon0", b"\x00" * 16)  # the older slot damaged: no effect
    assert LmonCounter(store, reserve=4).value == 8


# ---- keys --------------------------------------------------------------------


def test_keys_round_trip():
    store = Store()
    ks = KeyStore(store)
    assert ks.keys() is None and not ks.provisioned
    assert ks.provision(K1, K2)
    keys = ks.keys()
    assert isinstance(keys, sec.Keys) and ks.keys() is keys
    assert store.get("keys")[0:32] == K1 + K2 and len(store.get("keys")) == 36  # K1 | K2 | CRC-32
    booted = KeyStore(store).keys()
    assert sec.seal(booted, ACA, 102, unhex("003F"), 6, sec.ECC_CTR_READ, 0x66FB3B80) == A_AIR
    assert sec.open_(booted, ACA, B_AIR, 6, sec.ECC_CTR_READ) == (bytes(8), 0)


def test_keys_refused_and_malformed():
    store = FaultyStore()
    ks = KeyStore(store)
    assert ks.provision(K1, K2)
    old = ks.keys()
    store.arm(1, "fail")
    assert not ks.provision(K2, K1)
    assert ks.keys() is old and store.get("keys")[0:32] == K1 + K2
    for a, b in ((K1[:15], K2), (K1, K2 + b"\x00")):
        with raises(ValueError):
            ks.provision(a, b)
    rec = bytearray(store.get("keys"))
    rec[3] ^= 1  # damaged on flash: the CRC says so, not provisioned
    store.put("keys", rec)
    assert KeyStore(store).keys() is None
    store.put("keys", K1)  # wrong length on flash: not provisioned
    assert KeyStore(store).keys() is None
    store.put("keys", K1 + K2)  # a record of earlier firmware, without CRC
    assert KeyStore(store).provisioned


def test_staged_keys_take_over_only_when_activated():
    store = Store()
    ks = KeyStore(store)
    ks.provision(K1, K2)
    current = ks.keys()
    assert ks.pending() is None and ks.stage(K2, K1)
    assert ks.keys() is current and ks.pending()[0:2] == (K2, K1)
    booted = KeyStore(store)  # the staged pair survives a reboot, still not in force
    assert booted.pending()[0:2] == (K2, K1)
    assert booted.activate() and booted.pending() is None
    assert KeyStore(store).pending() is None
    assert sec.seal(KeyStore(store).keys(), ACA, 102, b"", 1, 0, 0) == sec.seal((K2, K1), ACA, 102, b"", 1, 0, 0)


def test_key_activation_refused_by_flash_keeps_the_old_pair():
    store = FaultyStore()
    ks = KeyStore(store)
    ks.provision(K1, K2)
    ks.stage(K2, K1)
    store.arm(1, "fail")
    assert not ks.activate()
    assert KeyStore(store).keys() is not None and ks.pending() is not None
    assert sec.seal(KeyStore(store).keys(), ACA, 102, b"", 1, 0, 0) == sec.seal((K1, K2), ACA, 102, b"", 1, 0, 0)


def test_keys_never_shown():
    ks = KeyStore(Store())
    assert repr(ks) == "KeyStore(empty)"
    ks.provision(K1, K2)
    text = repr(ks) + str(ks)
    assert text == "KeyStore(provisioned)KeyStore(provisioned)"


# ---- response cache ----------------------------------------------------------


def test_cache_round_trip_and_reboot():
    store = Store()
    cache = ResponseCache(store)
    assert cache.lookup(A_AIR, 1) is None
    assert cache.put(A_AIR, B_AIR, 1)
    assert bytes(cache.lookup(A_AIR, 1)) == B_AIR
    assert bytes(ResponseCache(store).lookup(A_AIR, 1)) == B_AIR  # after a reboot
    frame = bytearray(40)
    frame[9 : 9 + len(A_AIR)] = A_AIR
    view = memoryview(frame)[9 : 9 + len(A_AIR)]
    assert bytes(cache.lookup(view, 1)) == B_AIR  # straight from a frame buffer


def test_cache_needs_identical_request_and_ecc():
    cache = ResponseCache(Store())
    cache.put(A_AIR, B_AIR, 1)
    assert cache.lookup(A_AIR, 5) is None
    assert cache.lookup(A_AIR[:-1], 1) is None
    assert cache.lookup(A_AIR + b"\x00", 1) is None
    for i in range(len(A_AIR)):
        x = bytearray(A_AIR)
        x[i] ^= 0x01
        assert cache.lookup(x, 1) is None


def test_cache_ram_only_and_refused_flash():
    store = FaultyStore()
    cache = ResponseCache(store)
    assert cache.put(A_AIR, B_AIR, 1)
    assert cache.put(b"\x66\x01", b"\x67\x02", 0, persist=False)
    assert bytes(cache.lookup(b"\x66\x01")) == b"\x67\x02"
    # The last accepted request is the RAM-only one: after a reboot no answer
    # may come back, in particular not the earlier persisted one.
    assert ResponseCache(store).lookup(A_AIR, 1) is None
    writes = store.writes
    assert cache.put(b"\x66\x05", b"\x67\x06", 0, persist=False)
    assert store.writes == writes  # the flash record is emptied once, not per answer
    store.arm(1, "fail")
    assert not cache.put(b"\x66\x03", b"\x67\x04")
    assert bytes(cache.lookup(b"\x66\x03")) == b"\x67\x04"  # RAM copy still serves


def test_cache_clear_limits_and_damage():
    store = Store()
    cache = ResponseCache(store)
    cache.put(A_AIR, B_AIR, 1)
    assert cache.clear()
    assert cache.lookup(A_AIR, 1) is None
    assert ResponseCache(store).lookup(A_AIR, 1) is None
    for req, ans in ((b"", B_AIR), (A_AIR, b""), (bytes(129), B_AIR), (A_AIR, bytes(129))):
        with raises(ValueError):
            cache.put(req, ans)
    assert cache.put(bytes(128), bytes(128))
    for raw in (b"\x01", b"\x01\x05\x66", b"\x01\x00\x66\x67"):
        store.put("resp", raw)
        assert ResponseCache(store).lookup(b"\x66", 1) is None


def test_meter_order_repeat_after_reboot():
    # The meter of reference 8.2 (LMON 5) accepts request A, answers B and
    # loses power; the concentrator repeats A and must get B, not a second run.
    store = Store()
    ks = KeyStore(store)
    ks.provision(K1, K2)
    ctr = LmonCounter(store, initial=5)
    cache = ResponseCache(store)
    assert cache.lookup(A_AIR, 1) is None
    mon = ctr.candidate()
    assert sec.open_(ks.keys(), ACA, A_AIR, mon, sec.ECC_CTR_READ)[0] == unhex("003F")
    assert ctr.commit()
    answer = sec.seal(ks.keys(), ACA, 103, bytes(8), ctr.value, sec.ECC_CTR_READ, 0)
    assert answer == B_AIR
    assert cache.put(A_AIR, answer, sec.ECC_CTR_READ)
    # power cut; boot
    ks, ctr, cache = KeyStore(store), LmonCounter(store), ResponseCache(store)
    assert bytes(cache.lookup(A_AIR, sec.ECC_CTR_READ)) == B_AIR
    with raises(sec.AuthError):  # and A can never be accepted again
        sec.open_(ks.keys(), ACA, A_AIR, ctr.candidate(), sec.ECC_CTR_READ)
