"""The ``--cluster`` option: parse ``none | local[:N] | tcp://host:port`` and open a Dask client.

Dask is imported only when a cluster is asked for, so ``--cluster none`` costs nothing.
Every failure to reach or start a cluster is one :class:`ClusterError` line naming the
option, the address and what to do.
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

_ADDRESS = re.compile(r"^tcp://(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


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

    @property
    def is_none(self) -> bool:
        return self.kind == "none"

    def __str__(self) -> str:
        return {"none": "none", "local": f"local:{self.n_workers}"}.get(self.kind, self.address or "")


def parse_cluster(value: str | None, option: str = "--cluster") -> ClusterSpec:
    """Parse ``none``, ``local``, ``local:N`` or ``tcp://host:port``.

    ``local`` alone uses one worker per CPU core.

    Raises
    ------
    ClusterError
        Anything else, with the accepted forms in the message.
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
        return ClusterSpec("address", address=raw)
    raise ClusterError(f"{option}: {raw!r} is not none, local[:N] or a scheduler address like tcp://host:8786")


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
                                       host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR)
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
        client = Client(spec.address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"{option}: cannot reach the Dask scheduler at {spec.address} ({why[:160]}); "
                           f"start one there with 'dask scheduler' and workers with "
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
