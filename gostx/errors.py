"""Errors shared across gostx."""


class GostError(Exception):
    """An error the user can act on: printed as one line, exit code 1."""
