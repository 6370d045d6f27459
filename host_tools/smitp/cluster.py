"""The sections of a simulated fleet as tasks on a Dask distributed cluster.

`smitp sim --engine dask` hands each LV section to a worker (smitp.sim.section_job:
a few numbers in, the section's figures out). Without a scheduler address a
LocalCluster of worker processes starts on this machine; with one, the tasks
go to that cluster, whose workers must run the same smitp-meter version
(docs/simulation.md: a million meters on several machines).

One thread per worker: the firmware keeps preallocated buffers in module
globals (no allocation on the frame path), so two sections must never share
a process at the same time. Scale with processes and machines, not threads.

A Dask scheduler runs what its clients send and its clients unpickle what it
returns: connect only to a scheduler of your own, on a network you trust
(Dask's tls:// addresses encrypt and authenticate the connections).
"""

import contextlib
import logging
import os
import re

from smitp.errors import PeerError

CONNECT_S = 10  # a scheduler that does not answer within this is reported, not waited for
# A local cluster listens on the loopback only, its HTTP server (health,
# metrics) on any free port rather than on the dashboard's usual 8787.
LOCAL_ONLY = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}
_ADDRESS = re.compile(r"^(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")


class ClusterError(PeerError):
    """The cluster could not be reached or failed a task."""


def check_address(text):
    """A scheduler address, tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT -> the same."""
    m = _ADDRESS.match(text)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise ValueError("%r is not a scheduler address (tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT)" % text)
    return text


@contextlib.contextmanager
def client(scheduler=None, workers=None, processes=True):
    """A dask.distributed Client: of the scheduler at `scheduler`, or of a new
    LocalCluster of `workers` single-thread workers (processes, or threads of
    this process when processes is False: then one worker, see above)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--engine dask needs Dask distributed: pip install 'smitp-meter[cluster]'") from None
    if scheduler is not None:
        try:
            c = Client(scheduler, timeout=CONNECT_S)
        except (OSError, TimeoutError) as e:
            raise ClusterError("no Dask scheduler at %s: %s" % (scheduler, e)) from None
        with c:
            yield c
        return
    n = 1 if not processes else (workers or os.cpu_count() or 1)
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, host="127.0.0.1",
                      **LOCAL_ONLY, silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c


def check_workers(c):
    """ClusterError unless the cluster has a worker, and every worker one thread (see above)."""
    try:
        c.wait_for_workers(1, timeout=CONNECT_S)
    except TimeoutError:
        raise ClusterError("the scheduler has no worker (start some: dask worker ADDRESS --nthreads 1)") from None
    threads = {addr: w["nthreads"] for addr, w in c.scheduler_info(n_workers=-1)["workers"].items()}
    crowded = sorted(addr for addr, n in threads.items() if n != 1)
    if crowded:
        raise ClusterError("worker %s runs %d threads: two sections would share its firmware buffers; "
                           "start workers with --nthreads 1" % (crowded[0], threads[crowded[0]]))


def run_jobs(fn, jobs, scheduler=None, workers=None, processes=True):
    """fn(*job) for every job on the cluster; yields the results as they complete."""
    with client(scheduler, workers, processes) as c:
        from dask.distributed import as_completed  # client() has made sure Dask is there

        check_workers(c)
        futures = [c.submit(fn, *job, pure=False) for job in jobs]
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    raise ClusterError("a task failed on the cluster: %s" % (fut.exception(),))
                yield fut.result()
        finally:
            c.cancel(futures)
