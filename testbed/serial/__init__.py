"""Serial devices: a DUT that reports its own predictions, and a GRBL positioner.

Host side (what a session runner calls)::

    DutClient.open(rig.dut.serial) -> DutClient      .hello() -> DutInfo
        .begin(trial, window_ms) -> PendingTrial; .finish(pending, pcm=None, sample_rate=None) -> TrialResult
        .evaluate(trial, pcm, window_ms=None, sample_rate=16000) -> TrialResult
    Positioner.open(rig.positioner, rig.room.size_m) -> Positioner
        .home(); .move_to(x_m, y_m) (raises PositionerAlarm); .status() -> PositionerStatus
    list_ports() -> [{"device", "description", "hwid"}]

Device side (emulators, served on a :class:`PtyPort` or a real port): :class:`DutEmulator`
(the reference DUT firmware running a zoo model) and :class:`GrblEmulator`.
The wire protocol is in docs/serial-protocol.md.
"""

from testbed.serial.classifier import Classifier, TorchClassifier, load_zoo_classifier, loudest_window
from testbed.serial.dut_client import DutClient
from testbed.serial.dut_emulator import DutEmulator, SerialStream, make_mic_listener
from testbed.serial.grbl_emulator import GrblEmulator
from testbed.serial.ports import list_ports, open_serial
from testbed.serial.positioner import Positioner, PositionerStatus
from testbed.serial.protocol import PROTOCOL_VERSION, DutInfo, PendingTrial, TrialResult, b64_to_pcm, pcm_to_b64
from testbed.serial.pty import PtyPort

__all__ = [
    "PROTOCOL_VERSION",
    "Classifier", "DutClient", "DutEmulator", "DutInfo", "GrblEmulator", "PendingTrial",
    "Positioner", "PositionerStatus", "PtyPort", "SerialStream", "TorchClassifier", "TrialResult",
    "b64_to_pcm", "list_ports", "load_zoo_classifier", "loudest_window", "make_mic_listener",
    "open_serial", "pcm_to_b64",
]
