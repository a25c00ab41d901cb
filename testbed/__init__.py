"""ota-testbed: over-the-air adversarial attacks on compressed and robust on-device audio models."""

__version__ = "0.1.0"
