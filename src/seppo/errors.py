"""The one exception type the command line turns into a one-line message.

Anything a user can cause (a bad config key, a missing file, a corrupt image, a shard
with the wrong columns) raises `SeppoError` with a message that names the key, file,
shard or row. The CLI prints it as one line and exits non-zero; `--debug` shows the
traceback. Programming errors stay ordinary exceptions.
"""


class SeppoError(Exception):
    """A problem with the user's input, reported as one line naming what is wrong."""


class ConfigError(SeppoError):
    """An unknown key, a wrong type or an impossible combination in a config."""


class DataError(SeppoError):
    """A bad file, shard or row in the training or evaluation data."""


class ModelError(SeppoError):
    """A missing or unreadable model folder, component or checkpoint file."""
