"""One exception root for every mistake a user can make; the CLI prints these as one line."""

from __future__ import annotations


class AutoMLError(Exception):
    """Base of every error automl raises for a user mistake (bad flag, file, space or data)."""


class SearchSpaceError(AutoMLError, ValueError):
    """A search-space file is malformed: names the file, the key and the fix."""


class FitnessError(AutoMLError, ValueError):
    """A fitness expression cannot be parsed."""


class DataError(AutoMLError, ValueError):
    """A dataset (data.yaml, images, labels) cannot be used."""


class ConfigError(AutoMLError, ValueError):
    """A flag or option value is invalid, or conflicts with the study being resumed."""


class StudyError(AutoMLError, LookupError):
    """A study does not exist or holds nothing usable."""
