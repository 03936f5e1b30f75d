"""The exceptions npppo raises for bad input, all subclasses of :class:`NpppoError`.

The command line prints any of these as one line and exits non-zero; Python callers can catch
``NpppoError`` or the specific class.
"""

from __future__ import annotations


class NpppoError(Exception):
    """Base class of npppo's own errors: the message says what is wrong and what to do."""


class ConfigError(NpppoError, ValueError):
    """A configuration value is missing, malformed or out of range (the message names the field)."""


class EnvError(NpppoError):
    """The environment cannot be used: unknown id, unsupported spaces, or non-finite observations/rewards."""


class TrainingError(NpppoError, FloatingPointError):
    """Training cannot go on: a loss or gradient became non-finite."""


class CheckpointError(NpppoError):
    """A checkpoint cannot be read or does not fit: corrupt, truncated, foreign or mismatched."""


class WorkerError(NpppoError):
    """A rollout worker kept failing (died, or its environment raised) and the run cannot go on."""
