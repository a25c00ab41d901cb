"""The --cluster option: parsing, an unreachable scheduler and a physical rig exit 2 with one clear line."""

from __future__ import annotations

import socket

import pytest

from testbed.scale import ClusterError, parse_cluster
from tests.session.conftest import quick_plan, tone_utterances


@pytest.mark.parametrize(("text", "kind", "n", "address"), [
    ("none", "none", 0, None), ("", "none", 0, None), ("local:3", "local", 3, None),
    ("LOCAL:1", "local", 1, None), ("tcp://10.0.0.5:8786", "address", 0, "tcp://10.0.0.5:8786"),
    ("tcp://gpu-box.lab:9000", "address", 0, "tcp://gpu-box.lab:9000"),
])
def test_parse_cluster_accepts_the_three_forms(text, kind, n, address):
    spec = parse_cluster(text)
    assert (spec.kind, spec.n_workers, spec.address) == (kind, n, address)


def test_parse_cluster_local_alone_uses_every_core():
    import os

    assert parse_cluster("local").n_workers == (os.cpu_count() or 1)


@pytest.mark.parametrize("text", ["local:0", "local:two", "8786", "tcp://host", "http://host:8786",
                                  "tcp://host:99999", "cluster"])
def test_parse_cluster_rejects_anything_else_naming_the_option(text):
    with pytest.raises(ClusterError, match=r"^--cluster: "):
        parse_cluster(text)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_exits_2_with_the_address(cli, monkeypatch, tmp_path):
    import testbed.scale.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    addr = f"tcp://127.0.0.1:{_closed_port()}"
    r = cli(["session", "replay", "nosuch", "--models", "lm-fp32", "--cluster", addr,
             "--sessions-dir", tmp_path])
    assert r.exit_code == 2, r.output
    assert f"cannot reach the Dask scheduler at {addr}" in r.output
    assert "dask scheduler" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_bad_cluster_value_exits_2(cli, tmp_path, office_rig_path):
    r = cli(["attack", "craft", quick_plan(tmp_path), "--rig", office_rig_path, "--cluster", "local:0"])
    assert r.exit_code == 2, r.output
    assert "--cluster" in r.output and "local:0" in r.output and "Traceback" not in r.output


def test_physical_rig_refuses_a_cluster_before_creating_a_session(cli, tmp_path, tiny_zoo):
    from tests.conftest import RIGS

    sessions = tmp_path / "sessions"
    r = cli(["session", "run", quick_plan(tmp_path), "--rig", RIGS / "jack-loopback.toml", "--cluster", "local:2",
             "--sessions-dir", sessions, "--models-dir", tiny_zoo])
    assert r.exit_code == 2, r.output
    assert "physical" in r.output and "jack-loopback" in r.output and "--cluster none" in r.output
    assert "Traceback" not in r.output
    assert not sessions.exists() or not any(sessions.iterdir())


def test_runner_refuses_an_executor_on_a_physical_rig(tmp_path, tiny_zoo, office_rig_path):
    """The same guard in the domain code, for programmatic use."""
    from testbed.errors import SessionError
    from testbed.session import Runner, create_session, open_runner_parts

    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    physical = rig.model_copy(update={"backend": "sounddevice"})
    with pytest.raises(SessionError, match="physical"):
        Runner(store, physical, plan, models, executor=object()).run()
    assert store.status(verify=False)["done"] == 0
    store.close()
