# Weaknesses of the protocol itself (docs/security.md, section 10, "inherent"),
# shown on the meter as it runs: these tests pass because the weakness is
# there, and document what a meter-side rule cannot remove.
import struct

from meter import attrs as A
from meter.app import security as S
from meter.model import registers as R
from test_auth import ACA, KEYS, NOW, exchange, make, read_req


def test_ctr_request_and_answer_share_one_keystream():
    # W2: the answer is sealed under the request's MON with the same key and
    # IV, so XOR of the two ciphertexts is XOR of the two plaintexts.
    node, _ = make()
    req = read_req([R.SERIAL], 1)
    ans, ecc = exchange(node, req, S.ECC_CTR_READ)
    plain_req = bytes((req[0],)) + struct.pack(">H", R.SERIAL) + struct.pack("<Q", NOW)
    plain_ans = bytes((ans[0],)) + S.open_(KEYS, ACA, ans, 1, ecc)[0]
    n = len(plain_req)
    leaked = bytes(req[i] ^ ans[i] ^ plain_req[i] for i in range(1, n))
    assert leaked == plain_ans[1:n]  # an eavesdropper who guesses the request reads the answer there


def test_a_read_key_holder_can_take_the_mon_of_a_pending_write():
    # Any K2 holder may send a valid read under LMON + 1: the write sealed for
    # that MON then fails (a denial; nothing is forged), and its sender resynchronises.
    node, _ = make()
    label = struct.pack(">H", R.POINT_LABEL) + b"X" * 16
    write = S.seal_msg(KEYS, ACA, S.auth_attr(A.WRITE_REQ), label, 1, S.ECC_ECB_WRITE, NOW)
    ans, _ = exchange(node, read_req([R.STATUS_WORD], 1), S.ECC_CTR_READ)
    assert ans[0] == S.auth_attr(A.READ_RESP)
    ans, _ = exchange(node, write, S.ECC_ECB_WRITE)
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == S.NACK_AUTH
