"""Import pyroomacoustics without starting PortAudio.

pyroomacoustics imports ``sounddevice`` at import time (for playback helpers we never
use), which initialises PortAudio and, where a JACK server runs, opens a JACK client in
every simulated process. Such a client can abort the process at exit (PortAudio's JACK
host API asserts in ``Terminate``) and slows start-up. So unless ``sounddevice`` is
already loaded (a hardware backend wants it), it is hidden during the import.
"""

from __future__ import annotations

import sys
from types import ModuleType


def pyroomacoustics() -> ModuleType:
    """The ``pyroomacoustics`` module, imported without initialising PortAudio."""
    if "pyroomacoustics" in sys.modules or "sounddevice" in sys.modules:
        import pyroomacoustics as pra

        return pra
    sys.modules["sounddevice"] = None  # type: ignore[assignment]  # makes `import sounddevice` fail
    try:
        import pyroomacoustics as pra
    finally:
        del sys.modules["sounddevice"]
    return pra
