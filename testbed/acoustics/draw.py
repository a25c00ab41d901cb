"""Drawing a speaker -> mic channel of a rig, whatever its room is made of."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from testbed.acoustics.channel import Channel, shoebox_channel
from testbed.acoustics.measured import measured_channel
from testbed.errors import RigError

if TYPE_CHECKING:
    from testbed.rig import Rig


def sample_channel(rig: "Rig", mic: str, placement: str | None = None, *, rng: np.random.Generator,
                   position_jitter_m: float = 0.0) -> Channel:
    """The channel from every speaker of ``rig`` to ``mic`` at ``placement``.

    A measured room (``[room] model = "measured"``) gives its recorded paths (fixed: attacks
    vary them in their EOT instead, so ``position_jitter_m`` is ignored); a simulated room
    gives the image-source paths with every position jittered by ``position_jitter_m``
    metres (see :func:`testbed.acoustics.channel.shoebox_channel` for the parameters).
    """
    if mic not in rig.mics:
        raise RigError(f"{rig.source or rig.name}: mics: no mic {mic!r} (have: {', '.join(rig.mics)})")
    if rig.room.model == "measured":
        return measured_channel(rig, mic, placement)
    return shoebox_channel(rig, mic, placement, rng=rng, position_jitter_m=position_jitter_m)
