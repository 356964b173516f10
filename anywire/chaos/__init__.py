"""Chaos runs: the delivery guarantee checked under real faults.

``anywire chaos`` (and ``tests/chaos/``) starts a real ``redis-server``, several anywire
nodes (``anywire serve --redis``) behind nginx round robin, and a fleet of Python clients
over every transport; a publisher emits room, user and session events and calls clients,
while faults hit the nodes and Redis: SIGKILL rotation, a graceful rolling restart, a
paused Redis, a node stopped for longer than the ack timeout. Then
:mod:`anywire.chaos.checker` compares what every client received with what was published
and explains every difference (a ``$lost`` range) or reports it with its evidence.

Modules: :mod:`.procs` (the processes), :mod:`.app` (the node application), :mod:`.fleet`
(the clients and what they record), :mod:`.publisher`, :mod:`.faults`, :mod:`.checker`,
:mod:`.run` (one run) and :mod:`.cli`.
"""
