"""The bench app as a ``MODULE:ATTR`` for ``anywire serve``: ``anywire.bench.served:aw``.

``anywire serve anywire.bench.served:aw --workers N --redis URL`` runs the benchmark app
(:mod:`anywire.bench.app`) under the real CLI, its worker processes included (each worker
imports this module and builds its own node); ``--redis`` swaps in the Redis broker.
Importing this module builds the app, which is why it is not :mod:`anywire.bench.app`.
"""

from __future__ import annotations

from .app import make_app

__all__ = ["aw"]

aw = make_app()
