"""The one exception type for problems a user can cause and fix."""


class PipelineError(Exception):
    """Bad params, bad data or a missing file: the message says what is wrong and how to fix it.

    Stages print it on one line without a traceback and exit with status 1.
    """
