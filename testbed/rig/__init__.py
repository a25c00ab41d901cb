"""Rig files: schema, loading with one-line errors, geometry, and the rig map picture."""

from testbed.rig.geometry import SPEED_OF_SOUND_M_S, PathGeometry, geometry_table, path_geometry
from testbed.rig.loader import load_response_csv, load_rig, parse_rig, read_toml, resolve_response
from testbed.rig.schema import BACKENDS, MIC_TIERS, SPEAKER_MODELS, Dut, Hardware, Mic, Rig, Room, Speaker

__all__ = [
    "BACKENDS", "MIC_TIERS", "SPEAKER_MODELS", "SPEED_OF_SOUND_M_S",
    "Dut", "Hardware", "Mic", "PathGeometry", "Rig", "Room", "Speaker",
    "geometry_table", "load_response_csv", "load_rig", "parse_rig", "path_geometry",
    "read_toml", "resolve_response",
]
