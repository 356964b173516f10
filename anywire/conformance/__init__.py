"""Conformance kit: a server that drives a client under test through scripted scenarios
(docs/clients.md, "Writing a client in another language")."""
