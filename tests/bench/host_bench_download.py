"""Software download: the image and a fleet campaign.

The unix board's download image (bytes, blocks). Then `smitp sim --meters
1000 --download 16384`: a broadcast campaign over two sections of 500 meters
at 4800 bit/s with 2 % frame loss on every link (smitp/fleet_download.py).
Reports the channel efficiency (image bytes over the line's capacity during
the campaign, goal 70 %) and the bound of any scheme relaying each block along
one path on these sections (a repeater that relays every block and hears the
next one is busy 3 frame times a block: about 27 % on a section two repeaters
deep), the broadcast's own efficiency and its chains' ceiling, the time to
100 % of reachable meters, the frames spent on gap filling, the broadcast's
transmissions a block, and time, frames and airtime per phase (open, broadcast, gap filling,
verify and activate, retries, confirm). Then the same for one section of 100
meters and an image the size of the unix board's: the per-meter exchanges
weigh less against a larger image.
"""

import sys
import time

from smitp import fleet_download as FD
from smitp.image import build_download, download_summary

METERS = 1000
SIZE = 16384
REAL_METERS = 100  # a section of 100 meters and an image of the real firmware's size


def main():
    t0 = time.monotonic()
    s = download_summary(build_download("unix", "0.2.0"))
    print("image (unix board, every module): %d bytes, %d blocks of %d, built in %.1f s"
          % (s["bytes"], s["blocks"], s["block"], time.monotonic() - t0))
    ok = True
    for meters, size in ((METERS, SIZE), (REAL_METERS, s["bytes"])):
        print("\n== smitp sim --meters %d --download %d" % (meters, size))
        rep = FD.run(meters, min(size, FD.MAX_SIZE), seed=1)
        FD.print_report(rep)
        for i, r in enumerate(rep["details"]):
            print("  section %d: broadcast %.0f s, gap filling and verification %.0f s, %d requests, %.0f s on air"
                  % (i + 1, r["broadcast_s"], r["time_to_all_s"] - r["broadcast_s"], r["frames"]["requests"],
                     r["airtime_s"]))
        ok = ok and rep["activated"] == rep["reachable"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
