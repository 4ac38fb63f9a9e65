"""Errors that are the user's to fix: the CLI prints them and exits with code 2."""


class UserError(Exception):
    """Bad input (suite file, CLI value, plugin): reported as a message, never a traceback."""


class SkipSolver(Exception):
    """Raised by a solver that cannot run here (no GPU, missing dependency, budget)."""
