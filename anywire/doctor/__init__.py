"""The transport doctor: which transports work between a client's network and an anywire
server, and why (``anywire doctor URL``; docs/doctor.md)."""

from .probe import Options, probe
from .rules import diagnose, render

__all__ = ["Options", "diagnose", "probe", "render"]
