"""Errors caused by the user's input (config, data on disk), whose message says everything needed to fix it.

Job scripts show such an error as its message alone, without a traceback (see ``debias.jobs.start_job``);
every other exception is a bug or an environment problem and keeps its traceback.
"""


class InputError(Exception):
    """Bad or missing input: the message names the file, line, key or value and what was expected."""


class MissingData(InputError, FileNotFoundError):
    """A data file the config points to is not there."""


class DataFormatError(InputError, ValueError):
    """A data file is there but its content is not what the reader expects."""
