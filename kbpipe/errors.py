"""The exceptions a user may see. The CLI prints their message and exits 1."""

from __future__ import annotations


class KbpipeError(Exception):
    """A problem the user can fix: bad input, bad settings, missing credentials."""


class ConfigError(KbpipeError):
    """A setting has a bad value or a required one is missing."""


class InputError(KbpipeError):
    """An input file or row is malformed; the message names the file, line or example_id."""
