"""`smitp sim --engine dask`: sections as tasks on a Dask distributed cluster (smitp.cluster).

One small LocalCluster for the module: a single worker thread in this process
(the firmware's module buffers allow one section at a time per process),
reached through its tcp:// address as any running scheduler would be.
"""

import json

import pytest

from smitp import cluster, sim
from smitp.cli import main

ENGINE_FREE = lambda rep: {k: v for k, v in rep.items() if k not in ("wall_s", "engine", "details")}  # noqa: E731


@pytest.fixture(scope="module")
def scheduler():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      **cluster.LOCAL_ONLY) as c:
        yield c.scheduler_address


def test_same_seed_same_figures_whichever_engine(scheduler):
    local = sim.run(45, seed=3, section_meters=15, fail_repeaters=2)
    dask = sim.run(45, seed=3, section_meters=15, fail_repeaters=2, engine="dask", scheduler=scheduler)
    assert dask["sections"] == 3 and dask["read_ok"] == 45
    assert ENGINE_FREE(dask) == ENGINE_FREE(local)
    strip = lambda details: [{k: v for k, v in d.items() if k != "wall_s"} for d in details]  # noqa: E731
    assert strip(dask["details"]) == strip(local["details"])  # section by section, in order
    assert dask["engine"]["name"] == "dask" and dask["engine"]["scheduler"] == scheduler
    assert dask["engine"]["workers"] == 1 and dask["engine"]["worker_peak_rss_mb"] > 10


def test_cli_json_has_the_local_shape(capsys, scheduler):
    assert main(["sim", "--meters", "30", "--seed", "2", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["sim", "--meters", "30", "--seed", "2", "--engine", "dask", "--scheduler", scheduler, "--json"]) == 0
    out, err = capsys.readouterr()
    dask = json.loads(out)
    assert set(dask) == set(local) and set(dask["engine"]) == set(local["engine"])
    assert ENGINE_FREE(dask) == ENGINE_FREE(local) and dask["read_ok"] == 30


@pytest.mark.parametrize("argv, message", [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler goes with --engine dask"),
    (["--engine", "dask", "--scheduler", "tcp://nowhere"], "is not a scheduler address"),
    (["--engine", "dask", "--scheduler", "tcp://h:70000"], "is not a scheduler address"),
    (["--engine", "dask", "--boards", "1"], "not with --engine dask"),
    (["--meters", "200000"], "up to 10000000 with --engine dask"),
])
def test_bad_options_are_usage_errors(capsys, argv, message):
    assert main(["sim"] + argv) == 2
    assert message in capsys.readouterr().err


def test_no_scheduler_there_is_a_one_line_failure(capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_S", 0.5)
    assert main(["sim", "--meters", "10", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["error"].startswith("no Dask scheduler at tcp://127.0.0.1:9")
    assert err.splitlines()[-1].startswith("smitp sim: error: no Dask scheduler at tcp://127.0.0.1:9")


def test_addresses():
    for good in ("tcp://10.0.0.5:8786", "tls://sched.example:8786", "sched:8786", "tcp://[::1]:8786"):
        assert cluster.check_address(good) == good
    for bad in ("", "tcp://", "http://h:80", "h", "h:0", "tcp://h:8786/x"):
        with pytest.raises(ValueError):
            cluster.check_address(bad)


def test_a_local_cluster_of_worker_processes_by_default():
    rep = sim.run(30, seed=4, section_meters=15, engine="dask", workers=2)
    assert rep["read_ok"] == rep["reachable"] == 30 and rep["sections"] == 2
    assert rep["engine"]["scheduler"] is None and rep["engine"]["workers"] in (1, 2)  # a fast worker may take both
    assert ENGINE_FREE(rep) == ENGINE_FREE(sim.run(30, seed=4, section_meters=15))


def test_workers_with_several_threads_are_refused(capsys):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
                      **cluster.LOCAL_ONLY) as c:
        assert main(["sim", "--meters", "10", "--engine", "dask", "--scheduler", c.scheduler_address]) == 1
    assert "runs 2 threads" in capsys.readouterr().err
