"""Clients: ``python`` (asyncio) and ``js`` (browser ES modules, package data)."""
