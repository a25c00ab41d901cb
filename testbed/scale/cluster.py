"""The ``--cluster`` option: parse ``none | local[:N] | tcp://host:port | tls://host:port`` and
open a Dask client.

Dask is imported only when a cluster is asked for, so ``--cluster none`` costs nothing.
Every failure to reach or start a cluster is one :class:`ClusterError` line naming the
option, the address and what to do.

A local cluster listens on 127.0.0.1 only (scheduler, workers and dashboard). A remote
scheduler is reached over plain TCP (a trusted lab network) or over TLS with Dask's
:class:`distributed.security.Security`: ``tls://host:port`` with a CA file, this client's
certificate and its key, given as ``--tls-ca-file``, ``--tls-cert``, ``--tls-key`` (the
``testbed`` command's options) or ``TESTBED_TLS_CA_FILE``, ``TESTBED_TLS_CERT``,
``TESTBED_TLS_KEY``, or else Dask's own ``distributed.comm.tls`` configuration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from testbed.errors import TestbedError

#: Seconds to wait for a remote scheduler to answer, and for its first worker.
CONNECT_TIMEOUT_S = 5.0
WORKER_TIMEOUT_S = 30.0

_ADDRESS = re.compile(r"^(?P<scheme>tcp|tls)://(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")

#: Where each TLS file comes from: (field, CLI option, environment variable, Dask config key).
TLS_SOURCES = (
    ("ca_file", "--tls-ca-file", "TESTBED_TLS_CA_FILE", "distributed.comm.tls.ca-file"),
    ("cert", "--tls-cert", "TESTBED_TLS_CERT", "distributed.comm.tls.client.cert"),
    ("key", "--tls-key", "TESTBED_TLS_KEY", "distributed.comm.tls.client.key"),
)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS connection to a Dask scheduler.

    ``ca_file`` signs the scheduler's (and workers') certificates; ``cert`` and ``key`` are
    this client's certificate and private key (``key`` None when ``cert`` holds both).
    """

    ca_file: str
    cert: str
    key: str | None = None

    def security(self):
        """The :class:`distributed.security.Security` for a client with these files (encryption required)."""
        from distributed.security import Security

        return Security(tls_ca_file=self.ca_file, tls_client_cert=self.cert, tls_client_key=self.key,
                        require_encryption=True)


class ClusterError(TestbedError):
    """A cluster option that cannot be parsed, a scheduler that cannot be reached, a lost job."""


@dataclass(frozen=True)
class ClusterSpec:
    """What ``--cluster`` asked for.

    ``kind`` is ``"none"`` (in-process), ``"local"`` (a LocalCluster of ``n_workers`` processes
    on this machine) or ``"address"`` (an existing scheduler at ``address``).
    """

    kind: str
    n_workers: int = 0
    address: str | None = None
    tls: TlsFiles | None = None

    @property
    def is_none(self) -> bool:
        return self.kind == "none"

    def __str__(self) -> str:
        return {"none": "none", "local": f"local:{self.n_workers}"}.get(self.kind, self.address or "")


def _tls_files(raw: str, option: str) -> TlsFiles:
    """The TLS files for ``raw`` (a tls:// address): environment variables, else Dask's config."""
    import dask

    got: dict[str, str | None] = {}
    for name, opt, env, key in TLS_SOURCES:
        value = os.environ.get(env) or dask.config.get(key, None)
        if value and not os.path.isfile(value):
            raise ClusterError(f"{option}: {raw!r}: {opt} / {env} file {value!r} does not exist")
        if value:
            try:
                with open(value, "rb"):
                    pass
            except OSError as exc:
                raise ClusterError(f"{option}: {raw!r}: {opt} / {env} file {value!r} cannot be read "
                                   f"({exc.strerror or exc})") from None
        got[name] = value or None
    missing = [f"{opt} (or {env})" for name, opt, env, _ in TLS_SOURCES[:2] if not got[name]]
    if missing:
        raise ClusterError(f"{option}: {raw!r} needs {' and '.join(missing)}: the CA that signed the "
                           f"scheduler's certificate and this client's certificate (with --tls-key)")
    return TlsFiles(ca_file=str(got["ca_file"]), cert=str(got["cert"]), key=got["key"])


def parse_cluster(value: str | None, option: str = "--cluster") -> ClusterSpec:
    """Parse ``none``, ``local``, ``local:N``, ``tcp://host:port`` or ``tls://host:port``.

    ``local`` alone uses one worker per CPU core. ``tls://`` takes its certificate files from
    ``TESTBED_TLS_CA_FILE``, ``TESTBED_TLS_CERT``, ``TESTBED_TLS_KEY`` (which the ``testbed``
    command's ``--tls-*`` options set) or Dask's ``distributed.comm.tls`` configuration.

    Raises
    ------
    ClusterError
        Anything else, with the accepted forms in the message; a tls:// address without a CA
        file or a client certificate, or with one that does not exist.
    """
    raw = (value or "none").strip()
    low = raw.lower()
    if low in ("", "none"):
        return ClusterSpec("none")
    if low == "local" or low.startswith("local:"):
        n_txt = low.partition(":")[2]
        if not n_txt:
            return ClusterSpec("local", os.cpu_count() or 1)
        if not n_txt.isdigit() or int(n_txt) < 1:
            raise ClusterError(f"{option}: {raw!r}: N in local:N must be a whole number of worker processes >= 1")
        return ClusterSpec("local", int(n_txt))
    m = _ADDRESS.match(raw)
    if m:
        if not 0 < int(m["port"]) < 65536:
            raise ClusterError(f"{option}: {raw!r}: port {m['port']} is out of range (1-65535)")
        tls = _tls_files(raw, option) if m["scheme"] == "tls" else None
        return ClusterSpec("address", address=raw, tls=tls)
    raise ClusterError(f"{option}: {raw!r} is not none, local[:N] or a scheduler address like "
                       f"tcp://host:8786 or tls://host:8786")


@contextlib.contextmanager
def open_client(spec: ClusterSpec, option: str = "--cluster") -> Iterator[object | None]:
    """A ``distributed.Client`` for ``spec`` (None for ``none``), closed on exit.

    ``local:N`` starts N single-threaded worker processes on 127.0.0.1 and stops them on exit;
    an address connects to a running scheduler and waits for at least one worker.

    Raises
    ------
    ClusterError
        The scheduler does not answer within ``CONNECT_TIMEOUT_S`` or has no worker within
        ``WORKER_TIMEOUT_S``; the local cluster cannot start.
    """
    if spec.is_none:
        yield None
        return
    from distributed import Client, LocalCluster

    if spec.kind == "local":
        import dask

        # no MALLOC_TRIM_THRESHOLD_ in the workers: it makes every large tensor a fresh mmap
        environ = {k: v for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                cluster = LocalCluster(n_workers=spec.n_workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=logging.ERROR)
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise ClusterError(f"{option}: {spec}: cannot start a local Dask cluster ({exc}); "
                               f"try fewer workers or --cluster none") from None
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    try:
        security = spec.tls.security() if spec.tls is not None else None
    except (OSError, ValueError) as exc:   # ssl.SSLError is an OSError: a file that is not PEM
        raise ClusterError(f"{option}: {spec.address}: the TLS files cannot be loaded ({_first_line(exc)})") from None
    try:
        client = Client(spec.address, timeout=CONNECT_TIMEOUT_S, security=security)
    except (OSError, TimeoutError) as exc:
        start = ("'dask scheduler --protocol tls --tls-ca-file CA --tls-cert CERT --tls-key KEY'"
                 if spec.tls is not None else "'dask scheduler'")
        raise ClusterError(f"{option}: cannot reach the Dask scheduler at {spec.address} "
                           f"({_first_line(exc)[:160]}); start one there with {start} and workers with "
                           f"'dask worker {spec.address}', or use --cluster local:2") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
        except (TimeoutError, OSError):
            raise ClusterError(f"{option}: the Dask scheduler at {spec.address} has no worker after "
                               f"{WORKER_TIMEOUT_S:g} s; start some with 'dask worker {spec.address} "
                               f"--nthreads 1'") from None
        yield client
    finally:
        client.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def dashboard_link(client: object | None) -> str | None:
    """The Dask dashboard address of ``client``'s cluster, or None when it serves none."""
    if client is None:
        return None
    try:
        services = client.scheduler_info(n_workers=0).get("services") or {}
    except (OSError, TimeoutError, TypeError):
        return None
    return getattr(client, "dashboard_link", None) if "dashboard" in services else None


def n_slots(client: object | None) -> int:
    """How many tasks ``client``'s workers run at once now (their threads; 1 in-process)."""
    if client is None:
        return 1
    return max(1, sum(client.nthreads().values()))
