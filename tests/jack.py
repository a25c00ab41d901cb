"""A real JACK server for tests that need an audio path (pytest plugin: ``pytest_plugins = ["tests.jack"]``).

``jack_server`` (session scope) starts ``jackd --no-realtime -d dummy -r 16000 -p 256``
under a unique server name, points PortAudio at it (``JACK_DEFAULT_SERVER``) and
re-scans PortAudio's device list, so the host API "JACK Audio Connection Kit" shows
one device, "system" (2 in, 2 out). It stops only the jackd it started, by pid.

``jack_loopback`` wires every PortAudio client's i-th output to its i-th input while a
test runs: PortAudio registers those ports only while a stream is open, so a
a JACK client of the fixture gets a port-registration callback and connects them as they appear (and
disconnects ``system:capture_N`` from ``in_N``). On that loopback a sample played
in one period comes back exactly one period (256 samples) later on every channel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import signal
import tempfile
import uuid
from dataclasses import dataclass, field

import pytest

SAMPLE_RATE = 16000
PERIOD = 256


@dataclass
class JackServer:
    """A running jackd this fixture started."""

    name: str
    sample_rate: int
    period: int
    proc: subprocess.Popen
    log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([*args], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "JACK_DEFAULT_SERVER": self.name}, check=check)

    def ports(self) -> list[str]:
        """Every port name the server has (``jack_lsp``)."""
        return list(self.connections())

    def connections(self) -> dict[str, set[str]]:
        """Port name -> the ports it is connected to (``jack_lsp -c``); empty if the server is gone."""
        r = self._run("jack_lsp", "-s", self.name, "-c")
        out: dict[str, set[str]] = {}
        if r.returncode != 0:
            return out
        cur = None
        for ln in r.stdout.splitlines():
            if not ln.strip():
                continue
            if ln[0].isspace():
                if cur is not None:
                    out[cur].add(ln.strip())
            else:
                cur = ln.strip()
                out[cur] = set()
        return out

    def connect(self, src: str, dst: str) -> bool:
        return self._run("jack_connect", "-s", self.name, src, dst).returncode == 0

    def disconnect(self, src: str, dst: str) -> bool:
        return self._run("jack_disconnect", "-s", self.name, src, dst).returncode == 0


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM jackd if the test process dies (even by abort)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _refresh_portaudio() -> None:
    """Make PortAudio (shared by sounddevice and pyaudio) re-scan devices under the current environment."""
    from testbed.audio.devices import refresh

    import sounddevice  # noqa: F401  (initialise, then re-scan with the new environment)

    refresh()


def _release_portaudio() -> None:
    """Close PortAudio's JACK client while the server still runs (closing it later aborts in pa_jack)."""
    import sounddevice as sd

    if sd._initialized:
        sd._terminate()


@pytest.fixture(scope="session")
def jack_server():
    """Start a private jackd (dummy driver, 16 kHz, 256-sample periods); stop it afterwards."""
    missing = [t for t in ("jackd", "jack_lsp", "jack_connect", "jack_disconnect") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"JACK tools not installed ({', '.join(missing)}); run: bash scripts/system-deps.sh (jackd2)")
    name = f"testbed-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_AUDIO_RESERVATION"] = "1"
    os.environ["JACK_NO_START_SERVER"] = "1"
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(SAMPLE_RATE), "-p", str(PERIOD)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=dict(os.environ), preexec_fn=_die_with_parent,
    )
    server = JackServer(name=name, sample_rate=SAMPLE_RATE, period=PERIOD, proc=proc)
    try:
        deadline = time.monotonic() + 15.0
        while not any(p.startswith("system:playback") for p in server.ports()):
            if proc.poll() is not None:
                log.seek(0)
                out = log.read()
                pytest.fail(f"jackd exited with status {proc.returncode}: {out.strip()[-400:]}")
            if time.monotonic() > deadline:
                pytest.fail("jackd did not become ready within 15 s (jack_lsp never listed system ports)")
            time.sleep(0.1)
        _refresh_portaudio()
        yield server
    finally:
        if proc.poll() is None:
            try:
                _release_portaudio()
            except Exception as exc:  # noqa: BLE001 - the server must be stopped whatever PortAudio says
                server.log.append(f"PortAudio release failed: {exc}")
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import sounddevice as sd

        if not sd._initialized:
            sd._initialize()
        log.close()


class _Wirer(threading.Thread):
    """Connects each PortAudio client's out_N to its in_N as soon as the ports exist.

    A JACK client of our own gets a port-registration callback the moment PortAudio
    opens a stream; JACK forbids server calls inside callbacks, so the callback only
    wakes this thread, which wires the ports within milliseconds (a subprocess poll of
    ``jack_lsp`` lost the race against the stream's pre-roll on a loaded machine).
    """

    def __init__(self, server: JackServer) -> None:
        super().__init__(daemon=True, name="jack-loopback-wirer")
        import jack

        self.server = server
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.count = 0
        self.client = jack.Client(f"wirer-{uuid.uuid4().hex[:6]}", servername=server.name,
                                  no_start_server=True)
        # keep a reference: the callback must outlive this call
        self._on_port = lambda port, registered: self.wake.set()
        self.client.set_port_registration_callback(self._on_port)
        self.client.activate()

    def _wire_once(self) -> None:
        import jack

        c = self.client
        try:
            ports = [p for p in c.get_ports(is_audio=True) if not p.name.startswith(("system:", "wirer-"))]
        except jack.JackError:  # a port vanished while listing; the next wake-up lists again
            return
        # PortAudio numbers its ports with running counters per direction, so after a stream
        # with unequal channel counts out_N no longer faces in_N: pair the i-th output of a
        # client with its i-th input instead (only one stream per client is open at a time).
        by_client: dict[str, dict[str, list]] = {}
        for p in ports:
            client, _, short = p.name.partition(":")
            kind, _, num = short.partition("_")
            if kind in ("out", "in") and num.isdigit():
                by_client.setdefault(client, {"out": [], "in": []})[kind].append((int(num), p))
        for sides in by_client.values():
            outs = [p for _, p in sorted(sides["out"], key=lambda t: t[0])]
            ins = [p for _, p in sorted(sides["in"], key=lambda t: t[0])]
            for out, dst in zip(outs, ins):
                try:
                    if dst.name not in {q.name for q in c.get_all_connections(out)}:
                        c.connect(out, dst)
                        self.count += 1
                    for src in c.get_all_connections(dst):
                        if src.name.startswith("system:capture_"):
                            c.disconnect(src, dst)
                except jack.JackError:  # the stream closed while we wired; the next wake-up redoes it
                    continue

    def run(self) -> None:
        while not self.stop.is_set():
            self._wire_once()
            self.wake.wait(0.05)
            self.wake.clear()

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        self.join(timeout=5)
        self.client.deactivate()
        self.client.close()


@pytest.fixture
def jack_loopback(jack_server):
    """The JACK server, with every PortAudio output wired back to the same-numbered input."""
    wirer = _Wirer(jack_server)
    wirer.start()
    try:
        yield jack_server
    finally:
        wirer.close()
