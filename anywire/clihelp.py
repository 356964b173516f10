"""Help text of the ``anywire`` commands: module docstrings without their reST markup,
and every option's default shown.

The commands' descriptions are their modules' docstrings (one text for readers of the
code and of ``--help``); reST's ``literal`` quotes, ``::`` and roles would leak into the
terminal otherwise.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["HelpFormatter", "plain"]

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(doc: str | None) -> str:
    """``doc`` as terminal text: ``x`` and :role:`x` become x, "Examples::" becomes
    "Examples:" and a line holding only "::" goes."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", doc or ""))
    text = re.sub(r"(?m)^::\n\n?", "", text)
    return re.sub(r"(?<=\S)::$", ":", text, flags=re.M)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks (examples stay examples) and appends
    "(default: X)" to every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or not action.help:
            return action.help
        return super()._get_help_string(action)
