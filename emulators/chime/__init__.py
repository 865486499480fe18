"""A local, wire-compatible emulator of the Amazon Chime SDK identity, meetings and
messaging APIs (see docs/emulator.md)."""

from emulators.chime.app import create_app
from emulators.chime.clock import Clock, ManualClock, OffsetClock, SystemClock
from emulators.chime.config import EmulatorConfig
from emulators.chime.emulator import Emulator

__all__ = [
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "ManualClock",
    "OffsetClock",
    "SystemClock",
    "create_app",
]
