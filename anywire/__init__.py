"""anywire: real-time messaging over WebSocket, SSE and long-polling.

The server lives in :mod:`anywire.server`, the asyncio client in
:mod:`anywire.clients.python`, and the transport-neutral, sans-I/O protocol core in
:mod:`anywire.core`.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
