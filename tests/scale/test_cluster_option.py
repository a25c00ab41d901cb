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


# -- issue #22: local clusters bind 127.0.0.1 only; remote clusters over TLS -------------------

TLS_ENV = ("TESTBED_TLS_CA_FILE", "TESTBED_TLS_CERT", "TESTBED_TLS_KEY")


@pytest.fixture
def no_tls_env(monkeypatch):
    for k in TLS_ENV:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def _listening_host(server) -> set[str]:
    """The hosts a tornado HTTPServer listens on."""
    return {sock.getsockname()[0] for sock in server._sockets.values()}


def test_local_cluster_serves_scheduler_workers_and_dashboard_on_127_0_0_1_only():
    from testbed.scale import ClusterSpec, open_client

    with open_client(ClusterSpec("local", 1)) as client:
        cluster = client.cluster
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert _listening_host(cluster.scheduler.http_server) == {"127.0.0.1"}   # was 0.0.0.0
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert workers and all(addr.startswith("tcp://127.0.0.1:") for addr in workers)


def test_tls_address_needs_a_ca_and_a_client_certificate(no_tls_env, tmp_path):
    with pytest.raises(ClusterError, match=r"^--cluster: 'tls://10\.0\.0\.5:8786' needs --tls-ca-file .* and --tls-cert"):
        parse_cluster("tls://10.0.0.5:8786")
    no_tls_env.setenv("TESTBED_TLS_CA_FILE", str(tmp_path / "missing-ca.pem"))
    no_tls_env.setenv("TESTBED_TLS_CERT", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ClusterError, match=r"--tls-ca-file / TESTBED_TLS_CA_FILE file .*missing-ca\.pem.* does not exist"):
        parse_cluster("tls://10.0.0.5:8786")


def _openssl(*args: str, cwd) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_pki(folder, name: str) -> dict[str, str]:
    """A self-signed CA and one certificate it signed for 127.0.0.1 / localhost (scheduler,
    workers and client share it: the test needs only a CA they all trust)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", f"/CN={name}-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
             "-subj", "/CN=localhost", cwd=folder)
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "node.pem", "-days", "2", "-extfile", "san.cnf", cwd=folder)
    return {k: str(folder / f) for k, f in (("ca", "ca.pem"), ("cert", "node.pem"), ("key", "node.key"))}


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="needs the openssl command")
def test_tls_cluster_accepts_a_client_with_its_certificates_and_refuses_a_stranger(no_tls_env, tmp_path, cli):
    from distributed import LocalCluster
    from distributed.security import Security

    from testbed.scale import open_client

    lab = _make_pki(tmp_path / "lab", "lab")
    stranger = _make_pki(tmp_path / "other", "other")
    sec = Security(tls_ca_file=lab["ca"], tls_scheduler_cert=lab["cert"], tls_scheduler_key=lab["key"],
                   tls_worker_cert=lab["cert"], tls_worker_key=lab["key"], tls_client_cert=lab["cert"],
                   tls_client_key=lab["key"], require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls", security=sec,
                      host="127.0.0.1", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        no_tls_env.setenv("TESTBED_TLS_CA_FILE", lab["ca"])
        no_tls_env.setenv("TESTBED_TLS_CERT", lab["cert"])
        no_tls_env.setenv("TESTBED_TLS_KEY", lab["key"])
        spec = parse_cluster(address)
        assert spec.tls is not None and spec.tls.ca_file == lab["ca"]
        with open_client(spec) as client:
            assert client.submit(sum, [20, 22]).result(timeout=60) == 42
        # a client whose certificate another CA signed is refused: one ClusterError line
        import testbed.scale.cluster as cluster_mod

        no_tls_env.setattr(cluster_mod, "CONNECT_TIMEOUT_S", 3.0)
        no_tls_env.setenv("TESTBED_TLS_CERT", stranger["cert"])
        no_tls_env.setenv("TESTBED_TLS_KEY", stranger["key"])
        with pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at {address}") as err:
            with open_client(parse_cluster(address)):
                pass
        assert "\n" not in str(err.value) and "--protocol tls" in str(err.value)
        # plain tcp:// to a TLS scheduler is refused too
        with pytest.raises(ClusterError, match="cannot reach"):
            with open_client(parse_cluster(address.replace("tls://", "tcp://"))):
                pass


def test_cli_tls_options_reach_the_cluster_option(cli, no_tls_env, tmp_path):
    """`testbed --tls-ca-file ... session replay ... --cluster tls://...`: the files are checked
    (one line, exit 2) and, when they exist, an unreachable TLS scheduler is one line too."""
    addr = f"tls://127.0.0.1:{_closed_port()}"
    r = cli(["session", "replay", "nosuch", "--models", "lm-fp32", "--cluster", addr, "--sessions-dir", tmp_path])
    assert r.exit_code == 2 and "needs --tls-ca-file" in r.output and "Traceback" not in r.output
    r = cli(["--tls-ca-file", str(tmp_path / "nope.pem"), "--tls-cert", str(tmp_path / "nope.pem"),
             "session", "replay", "nosuch", "--models", "lm-fp32", "--cluster", addr, "--sessions-dir", tmp_path])
    assert r.exit_code == 2 and "nope.pem" in r.output and "does not exist" in r.output
    assert len(r.output.strip().splitlines()) == 1
