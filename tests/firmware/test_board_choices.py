# Optional engines a board may leave out (meter/contracts.pyi): the firmware's
# build() attaches the software-download engine unless the board's
# serves_download() says False, and the DLMS/COSEM profile unless its
# serves_dlms() does; a board without the member gets both.
from meter import attrs as A
from meter.runtime import firmware as F
from fwtest import unhex


class _Board:
    name = "test"
    storage_dir = None  # records in RAM

    def __init__(self, **choices):
        for member, value in choices.items():
            setattr(self, member, (lambda v: lambda: v)(value))

    def identity(self):
        return unhex("A8040A1E8901"), "SN1"

    def unix_time(self):
        return 1700000000

    def set_unix_time(self, t):
        pass


def test_a_board_may_leave_the_download_engine_out():
    model, node, meter, download = F.build(_Board(serves_download=False))
    assert download is None
    assert A.REPROG_LOCAL not in node.app.services and A.REPROG_BROADCAST not in node.app.services


def test_download_engine_and_dlms_profile_by_default():
    model, node, meter, download = F.build(_Board())
    assert download is not None and node.dlms is not None
    assert node.app.services[A.REPROG_LOCAL] == download.local
    assert node.app.services[A.REPROG_BROADCAST] == download.broadcast


def test_the_two_choices_are_independent():
    model, node, meter, download = F.build(_Board(serves_dlms=False))
    assert node.dlms is None and download is not None
    model, node, meter, download = F.build(_Board(serves_download=False, serves_dlms=True))
    assert node.dlms is not None and download is None
