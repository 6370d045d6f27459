"""`smitp sim`: a fleet of meters on simulated LV sections, discovered, registered and read.

The fleet is split into sections (topology.lv_sections: one transformer and one
concentrator each; sections do not hear each other). Each section runs on its
own medium and clock: in-process meters (the firmware under CPython) on a
virtual clock that jumps from event to event, so no real waiting. A section
that holds emulated boards (real MicroPython processes) must run on the wall
clock, as the boards do: all of its meters then live in real time, so keep
such runs small (a few meters: each REQADDR window lasts 16 s). Sections
without boards run in parallel worker processes of this machine, or, with
engine "dask", as tasks on a Dask distributed cluster (smitp.cluster): a city
of many machines. A section is deterministic by its seed, so the engines
give the same figures.

Per section: discovery (smitp.discovery), registration, one read of every
registered meter; with fail_repeaters, R meters that repeat for others are
powered off afterwards and every meter is read again, the concentrator
repairing the routes that fail.
"""

import multiprocessing
import os
import random
import signal
import tempfile
import time

from meter.link import mac
from meter.model import registers as R
from meter import timers as Tm
from meter.link.netmgmt import RELAY_WINDOW_MS
from smitp import topology as T
from smitp.concentrator import Concentrator, ConcentratorError, NoAnswer
from smitp.discovery import MAX_LEVEL, UNSILENCE_GAP_S, UNSILENCE_TIMES, Discovery, airtime_s
from smitp.medium import Medium
from smitp.network import Network, RealClock, VirtualClock, in_process_meter, serial_for
from smitp.scabook import frame_len

READ_REGISTERS = (R.ENERGY_IMPORT, R.STATUS_WORD)
BOARD_SECTION_MAX = 50  # meters in a real-time section: minutes of wall clock
MAX_METERS = 100000  # 200 sections: minutes of work on a few cores
CLUSTER_MAX_METERS = 10000000  # --engine dask: 20,000 sections, for a cluster of many machines
ENGINES = ("local", "dask")  # worker processes of this machine; a Dask distributed cluster (smitp.cluster)
_READ_ANSWER = 1 + 4 + 8  # READ.RESP of READ_REGISTERS


def build_section(topo, seed=0, boards=(), workdir=None):
    """(network, concentrator port) for one section; `boards`: names run as emulated boards."""
    from smitp.emulated_board import EmulatedBoard

    net = Network(Medium(topology=topo, seed=seed), RealClock() if boards else VirtualClock())
    port = None
    for node in topo["nodes"]:
        name = node["name"]
        if "phase" in node:
            net.phases[name] = node["phase"]
        if node["role"] == "concentrator":
            port = net.add_concentrator(name)
        elif name in boards:
            net.add_board(name, EmulatedBoard(name, node["aca"], serial_for(node["aca"]), workdir))
        else:
            aca = bytes.fromhex(node["aca"])
            net.add_meter(name, in_process_meter(aca, serial_for(node["aca"]), net.clock, seed=seed))
    if port is None:
        raise ValueError("the section has no concentrator")
    return net, port


def reachable(topo, root, skip=()):
    """Meters within MAX_LEVEL hops of the concentrator over two-way links."""
    h = T.hops(topo, root, skip)
    return {n for n, d in h.items() if 0 < d <= MAX_LEVEL}


def read_every(disc, conc, regs=READ_REGISTERS, progress=None, phase="reading"):
    """One READ.REQ to every registered meter, parents first; a failed route is
    repaired once. Returns {ACA: True/False}. progress(done, total, phase) as it goes."""
    out = {}
    order = disc.by_level()
    for i, m in enumerate(order):
        if progress:
            progress(i, len(order), phase)
        if not m.registered:
            continue
        if not disc.route_ok(m) and not disc.repair(m):
            out[m.aca] = False
            continue
        for attempt in (0, 1):
            try:
                conc.read(m.aca, list(regs), m.route)
                out[m.aca] = True
                break
            except NoAnswer:
                out[m.aca] = False
                if attempt or not disc.repair(m):
                    break
            except ConcentratorError:
                out[m.aca] = False
                break
    if progress:
        progress(len(order), len(order), phase)
    return out


def min_airtime_s(disc, read_request=1 + 2 * len(READ_REGISTERS), read_answer=_READ_ANSWER):
    """Airtime of the frames that must be sent to discover, silence, register and
    read each meter once over its route (each hop carries the whole frame)."""
    total = 0.0
    for m in disc.meters.values():
        hops = len(m.route) + 1

        def both_ways(req, ans, by_sca=False):
            size = frame_len(0, len(m.route), by_sca)
            return hops * (airtime_s(size + req) + airtime_s(size + ans))

        total += airtime_s(mac.HEADER_LEN + 13 + mac.CRC_LEN)  # its ADDRESS.RESP
        total += (hops - 1) * 12 * 8 / 4800.0  # its record in REQADDR.RESP frames
        by_sca = disc.book.addresses(m.aca, m.route)[0][5] == mac.SCA_MARK  # as the reads address it
        total += both_ways(2, 5) + both_ways(7, 8) + both_ways(read_request, read_answer, by_sca)
    return total


def fixed_windows_s(disc):
    """Waits the protocol imposes whatever the schedule: the gap between the
    un-silencing broadcasts, one RC slot per meter heard directly (a slot
    carries one answer), and one REQADDR window per level, in a chain (a
    level's relays are known only once the level above has listened; the
    deepest level listens too, unless it is the MAC's last)."""
    levels = [m.level for m in disc.meters.values()]
    deepest = max(levels or [0])
    windows = deepest if deepest < MAX_LEVEL else deepest - 1
    return ((UNSILENCE_TIMES - 1) * UNSILENCE_GAP_S + levels.count(1) * Tm.NM_SLOT_MS / 1000.0
            + windows * RELAY_WINDOW_MS / 1000.0)


def check_fleet(n_meters, boards=0, fail_repeaters=0, engine="local", scheduler=None):
    """ValueError naming the option unless run() can take these figures."""
    if engine not in ENGINES:
        raise ValueError("--engine: one of %s, not %r" % (", ".join(ENGINES), engine))
    if scheduler is not None and engine != "dask":
        raise ValueError("--scheduler goes with --engine dask")
    if engine == "dask" and boards:
        raise ValueError("--boards: emulated boards run on this machine, in real time; not with --engine dask")
    most = CLUSTER_MAX_METERS if engine == "dask" else MAX_METERS
    if not 1 <= n_meters <= most:
        raise ValueError("--meters: 1..%d%s, not %d" % (most, "" if engine == "dask" else
                                                         " (up to %d with --engine dask)" % CLUSTER_MAX_METERS,
                                                         n_meters))
    if not 0 <= boards <= min(n_meters, BOARD_SECTION_MAX):
        raise ValueError("--boards: 0..%d (and at most --meters), not %d" % (BOARD_SECTION_MAX, boards))
    if boards and n_meters > BOARD_SECTION_MAX:
        raise ValueError("--boards: the fleet then runs in real time, so --meters at most %d, not %d"
                         % (BOARD_SECTION_MAX, n_meters))
    if not 0 <= fail_repeaters <= n_meters:
        raise ValueError("--fail-repeaters: 0..--meters (%d), not %d" % (n_meters, fail_repeaters))


def _pick_boards(topo, k, seed):
    meters = [n["name"] for n in topo["nodes"] if n["role"] == "meter"]
    return set(random.Random(seed).sample(meters, k))


def run_section(topo, seed=0, fail_repeaters=0, boards=(), workdir=None, progress=None):
    """Discovery, registration and reads on one section; returns its figures.
    progress(done, total, phase): phase is "discovering", "registering",
    "reading" or "reading after failures"."""
    from smitp.demo import wait_until_ready

    root = next(n["name"] for n in topo["nodes"] if n["role"] == "concentrator")
    section = topo.get("meta", {}).get("section", 1)
    by_aca = {bytes.fromhex(n["aca"]): n["name"] for n in topo["nodes"] if n["role"] == "meter"}
    reach = reachable(topo, root)
    wall0 = time.monotonic()
    net, port = build_section(topo, seed, boards, workdir)
    try:
        if boards:
            wait_until_ready(net)
        t0 = net.clock.now()
        found = (lambda d, t, w: progress(min(d, t), t, "discovering")) if progress else None
        disc = Discovery(port, section=section, progress=found, expected=len(reach))
        disc.discover()
        if progress:
            progress(len(reach), len(reach), "discovering")
        phases = dict(disc.phase_s)
        t1 = net.clock.now()
        disc.register_all(progress)
        t2 = net.clock.now()
        conc = Concentrator(port, book=disc.book)  # reads by SCA where it saves airtime
        reads = read_every(disc, conc, progress=progress)
        phases.update(register=t2 - t1, read=net.clock.now() - t2)
        names = {aca: by_aca.get(aca, aca.hex()) for aca in disc.meters}
        res = {
            "meters": len(by_aca),
            "reachable": len(reach),
            "discovered": len(disc.meters),
            "registered": sum(1 for m in disc.meters.values() if m.registered),
            "read_ok": sum(1 for ok in reads.values() if ok),
            # read by SCA through 2-byte SCA repeater entries (smitp.scabook: where it saves airtime)
            "read_by_sca": sum(1 for a, ok in reads.items()
                               if ok and disc.book.addresses(a, disc.meters[a].route)[0][5] == mac.SCA_MARK),
            "max_hops": max([m.level for m in disc.meters.values()] or [0]),
            "missing": sorted(n for n in reach if n not in {names[a] for a in disc.meters}),
        }
        if boards:
            res["kinds"] = _by_kind(disc, reads, names, set(boards))
        if fail_repeaters:
            t3 = net.clock.now()
            res.update(_fail(net, topo, root, disc, conc, names, fail_repeaters, seed, progress))
            phases["read_after_failures"] = net.clock.now() - t3
        # child -> (parent, SNR the child measured in discovery, None if unknown)
        tree = {names[a]: (names[m.route[-1]] if m.route else root, None if m.quality[1] == 0xFF else m.quality[1])
                for a, m in disc.meters.items()}
        st = net.medium.stats
        res.update({
            "frames": st["frames"],
            "airtime_s": st["airtime_s"],
            "airtime_min_s": min_airtime_s(disc),
            "fixed_windows_s": fixed_windows_s(disc),
            "phases_s": phases,
            "sim_time_s": net.clock.now() - t0,
            "collisions": st["collisions"],
            "discovery": dict(disc.stats),
            "tree": tree,
            "repeaters": sorted({names[r] for m in disc.meters.values() for r in m.route}),
            "root": root,
        })
    finally:
        net.close()
    res["wall_s"] = time.monotonic() - wall0
    return res


def _by_kind(disc, reads, names, boards):
    out = {}
    for kind in ("boards", "in_process"):
        mine = [a for a in disc.meters if (names[a] in boards) == (kind == "boards")]
        out[kind] = {
            "discovered": len(mine),
            "registered": sum(1 for a in mine if disc.meters[a].registered),
            "read_ok": sum(1 for a in mine if reads.get(a)),
        }
    out["boards"]["meters"] = len(boards)
    return out


def _fail(net, topo, root, disc, conc, names, count, seed, progress=None):
    """Power off `count` repeaters, read every meter again; the figures after the failure."""
    used = sorted({r for m in disc.meters.values() for r in m.route}, key=lambda a: names[a])
    failed = random.Random(seed + 1).sample(used, min(count, len(used)))
    now = net.clock.now()
    for aca in failed:
        name = names[aca]
        net.medium.set_power(name, False, now)
        if name in net.boards:
            net.boards[name].board.power_cut()
    failed_names = {names[a] for a in failed}
    affected = [a for a, m in disc.meters.items() if a not in failed and any(r in failed for r in m.route)]
    before = {a: disc.meters[a].route for a in affected}
    reads = read_every(disc, conc, progress=progress, phase="reading after failures")
    return {
        "failed_repeaters": sorted(failed_names),
        "affected": len(affected),
        "rerouted": sum(1 for a in affected if reads.get(a) and disc.meters[a].route != before[a]),
        "reachable_after": len(reachable(topo, root, failed_names)),
        "read_ok_after": sum(1 for a, ok in reads.items() if ok and a not in failed),
    }


def _ignore_interrupt():
    """In a worker: Ctrl-C is the parent's to handle (it ends the pool), not each worker's to report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def peak_rss_mb():
    """The largest resident memory this process has had, MB (Linux counts ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def section_job(n_meters, k, seed, fail_repeaters, section_meters):
    """Section k of the fleet, run where this is called (a worker process of
    this machine or of a Dask cluster): it builds its own topology from these
    few numbers, so only they travel, and the figures come back."""
    import socket

    res = run_section(T.lv_section(n_meters, k, seed, section_meters), seed, fail_repeaters)
    return {"k": k, "result": res, "worker": "%s:%d" % (socket.gethostname(), os.getpid()),
            "peak_rss_mb": peak_rss_mb()}


def _pool_job(job):
    return section_job(*job)


def _local_jobs(jobs, workers):
    """section_job over worker processes of this machine, results as they complete."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_ignore_interrupt) as pool:
        yield from pool.imap_unordered(_pool_job, jobs)


def run(n_meters, seed=0, boards=0, fail_repeaters=0, progress=None, workers=None,
        section_meters=T.SECTION_METERS, engine="local", scheduler=None):
    """The whole fleet; returns the report (per-section figures under "details").

    engine "local": sections in worker processes of this machine (one section
    runs in this process); "dask": sections as tasks on a Dask distributed
    cluster, a local one (`workers` processes) or the one at `scheduler`.
    Same seed, same figures whichever engine (wall time and "engine" aside).
    progress(done, total, phase): the phases of a lone section, else "sections".
    """
    check_fleet(n_meters, boards, fail_repeaters, engine, scheduler)
    wall0 = time.monotonic()
    count = T.section_count(n_meters, section_meters)
    results: list[dict | None] = [None] * count
    usage: dict[str, float] = {}  # worker -> its peak resident memory, MB
    # R repeaters over the fleet: spread over the sections, the first ones first
    fails = [fail_repeaters // count + (1 if i < fail_repeaters % count else 0) for i in range(count)]
    if boards:
        # The section holding the boards runs first, alone, in real time.
        first = T.lv_section(n_meters, 0, seed, section_meters)
        with tempfile.TemporaryDirectory(prefix="smitp-sim-") as workdir:
            picked = _pick_boards(first, boards, seed)
            results[0] = run_section(first, seed, fails[0], picked, workdir, progress if count == 1 else None)
    rest = [k for k in range(count) if results[k] is None]
    t_rest = time.monotonic()
    if len(rest) == 1 and engine == "local":
        results[rest[0]] = run_section(T.lv_section(n_meters, rest[0], seed, section_meters), seed,
                                       fails[rest[0]], progress=progress)
        usage["%d" % os.getpid()] = peak_rss_mb()
    elif rest:
        jobs = [(n_meters, k, seed, fails[k], section_meters) for k in rest]
        if engine == "dask":
            from smitp import cluster

            done_jobs = cluster.run_jobs(section_job, jobs, scheduler, workers)
        else:
            done_jobs = _local_jobs(jobs, workers or min(len(rest), os.cpu_count() or 1))
        if progress:
            progress(0, len(rest), "sections")
        for n, job in enumerate(done_jobs, 1):
            results[job["k"]] = job["result"]
            usage[job["worker"]] = max(usage.get(job["worker"], 0.0), job["peak_rss_mb"])
            if progress:
                progress(n, len(rest), "sections")
    rest_s = time.monotonic() - t_rest
    rep = summarise(results, n_meters, seed, time.monotonic() - wall0, fail_repeaters)
    rep["engine"] = {
        "name": engine,
        "scheduler": scheduler if engine == "dask" else None,
        "workers": len(usage),
        "sections_per_s": round(len(rest) / rest_s, 4) if rest and rest_s > 0 else None,
        "worker_peak_rss_mb": round(max(usage.values()), 1) if usage else None,
    }
    return rep


def summarise(results, n_meters, seed, wall_s, fail_repeaters=0):
    total = lambda key: sum(r[key] for r in results)  # noqa: E731
    sim_time = max(r["sim_time_s"] for r in results)  # concentrators work in parallel
    longest = next(r for r in results if r["sim_time_s"] == sim_time)
    airtime_min = longest["airtime_min_s"]
    rep = {
        "meters": n_meters,
        "reachable": total("reachable"),
        "discovered": total("discovered"),
        "registered": total("registered"),
        "read_ok": total("read_ok"),
        "read_by_sca": total("read_by_sca"),
        "max_hops": max(r["max_hops"] for r in results),
        "frames": total("frames"),
        "airtime_s": round(total("airtime_s"), 1),
        "sim_time_s": round(sim_time, 1),
        "wall_s": round(wall_s, 2),
        "seed": seed,
        "sections": len(results),
        "frames_per_meter": round(total("frames") / max(1, n_meters), 1),
        "airtime_min_s": round(airtime_min, 1),
        "sim_to_min_airtime": round(sim_time / airtime_min, 1) if airtime_min else None,
        "fixed_windows_s": round(longest["fixed_windows_s"], 1),
        "missing": [n for r in results for n in r["missing"]],
    }
    if fail_repeaters:
        # a section where nothing failed keeps its figures
        after = lambda key, same: sum(r.get(key, r[same]) for r in results)  # noqa: E731
        rep.update({
            "failed_repeaters": [n for r in results for n in r.get("failed_repeaters", ())],
            "affected": sum(r.get("affected", 0) for r in results),
            "rerouted": sum(r.get("rerouted", 0) for r in results),
            "reachable_after": after("reachable_after", "reachable"),
            "read_ok_after": after("read_ok_after", "read_ok"),
        })
    kinds = [r["kinds"] for r in results if "kinds" in r]
    if kinds:
        rep["boards"] = kinds[0]["boards"]
        rep["in_process"] = kinds[0]["in_process"]
    rep["details"] = results
    return rep


def tree_scene(report, n_meters, seed, section_meters=T.SECTION_METERS):
    """The picture of the discovered tree (smitp.treeview): a panel per
    concentrator, meters by hop level, repeaters and failed repeaters marked."""
    from smitp import treeview

    nodes, links, roots = [], [], []
    failed = set(report.get("failed_repeaters", ()))
    for k, res in enumerate(report["details"]):
        topo = T.lv_section(n_meters, k, seed, section_meters)
        repeaters = set(res["repeaters"])
        for n in topo["nodes"]:
            n = {key: v for key, v in n.items() if key in ("name", "role", "aca")}
            n["root"] = res["root"]
            if n["name"] in repeaters:
                n["repeater"] = True
            if n["name"] in failed:
                n["failed"] = True
            nodes.append(n)
        roots.append(res["root"])
        for child, (parent, snr) in res["tree"].items():
            links.append({"a": parent, "b": child} if snr is None else {"a": parent, "b": child, "snr_db": snr})
    return treeview.draw(nodes, links, roots)


def tree_svg(report, n_meters, seed, section_meters=T.SECTION_METERS):
    """SVG text of tree_scene()."""
    return tree_scene(report, n_meters, seed, section_meters).svg()


def print_report(rep, out=None):
    import sys

    out = out or sys.stdout
    w = lambda *a: print(*a, file=out)  # noqa: E731
    w("%d meters in %d section(s), seed %d" % (rep["meters"], rep["sections"], rep["seed"]))
    w("  reachable %d, discovered %d, registered %d, read %d; deepest %d hop(s)"
      % (rep["reachable"], rep["discovered"], rep["registered"], rep["read_ok"], rep["max_hops"]))
    if "rerouted" in rep:
        w("  after powering off %d repeater(s): %d meters affected, %d rerouted, read %d of %d reachable"
          % (len(rep["failed_repeaters"]), rep["affected"], rep["rerouted"], rep["read_ok_after"],
             rep["reachable_after"]))
    if "boards" in rep:
        w("  emulated boards: %(boards)s" % rep)
        w("  in-process meters: %(in_process)s" % rep)
    w("  %d frames (%.1f per meter), %.0f s on air; simulated %.0f s = %.1f x the %.0f s minimum airtime"
      " (fixed protocol windows %.0f s more); wall %.1f s"
      % (rep["frames"], rep["frames_per_meter"], rep["airtime_s"], rep["sim_time_s"],
         rep["sim_to_min_airtime"] or 0, rep["airtime_min_s"], rep["fixed_windows_s"], rep["wall_s"]))
    if rep["missing"]:
        w("  not discovered: %s" % ", ".join(rep["missing"][:20]))
