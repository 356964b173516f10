"""Sans-I/O protocol core: frames, codecs, sessions, rooms, streams, negotiation policy.

Nothing here performs I/O, touches an event loop or reads a clock: time is passed in as
``now`` (seconds, any monotonic origin) and results are returned as values.
"""
