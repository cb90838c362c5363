"""The project's own error types.

Every mistake a user can make (a bad parameter, a corrupt file, missing data) is raised as a
:class:`OneClassError`, whose message is one line naming the parameter or file and what is
expected. The CLI prints that line without a traceback.
"""


class OneClassError(ValueError):
    """A user-facing error: bad parameter, bad input file, missing data."""


class DataNotFoundError(OneClassError):
    """No source could provide the requested dataset."""


class TrainingError(OneClassError):
    """Training produced an unusable model (NaN/inf loss, scores collapsed to a constant)."""
