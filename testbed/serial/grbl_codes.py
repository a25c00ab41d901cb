"""What GRBL 1.1's ``error:N`` and ``ALARM:N`` codes mean (from the GRBL 1.1 interface docs)."""

from __future__ import annotations

ALARMS: dict[int, str] = {
    1: "hard limit triggered; machine position is likely lost, re-home",
    2: "soft limit: the target is beyond the machine travel; position kept",
    3: "reset while in motion; position may be lost, re-home",
    4: "probe fail: probe not in the expected initial state",
    5: "probe fail: probe did not contact the workpiece",
    6: "homing fail: reset during the homing cycle",
    7: "homing fail: safety door opened during homing",
    8: "homing fail: could not clear the limit switch when pulling off",
    9: "homing fail: could not find the limit switch",
    10: "homing fail: second dual-axis limit switch not found",
}

ERRORS: dict[int, str] = {
    1: "G-code words consist of a letter and a value; letter was not found",
    2: "numeric value format is not valid or missing an expected value",
    3: "'$' system command was not recognized or supported",
    4: "negative value received for an expected positive value",
    5: "homing cycle is not enabled via settings ($22)",
    6: "minimum step pulse time must be greater than 3 usec",
    7: "EEPROM read failed; reset and restored to default values",
    8: "'$' command cannot be used unless GRBL is IDLE",
    9: "G-code locked out during alarm or jog state (home with $H or unlock with $X)",
    10: "soft limits cannot be enabled without homing also enabled",
    11: "max characters per line exceeded",
    15: "jog target exceeds machine travel",
    20: "unsupported or invalid g-code command found in block",
    22: "feed rate has not yet been set or is undefined",
    24: "two G-code commands that both require the use of the XYZ axis words were detected",
    33: "the motion command has an invalid target",
}


def alarm_text(code: int) -> str:
    return ALARMS.get(code, "unknown alarm")


def error_text(code: int) -> str:
    return ERRORS.get(code, "unknown error")
