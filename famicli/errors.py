"""The one exception family the library raises; the CLI turns it into ``Error: ...`` and exit 1."""


class FamiposeError(Exception):
    """Base class: a problem the user can fix (bad input, bad option, bad file)."""


class ConfigError(FamiposeError):
    """An unknown variant, option value or inconsistent configuration."""


class CheckpointError(FamiposeError):
    """A checkpoint that cannot be read or does not fit the model."""


class InputError(FamiposeError):
    """A malformed input file (JSON, video, dataset folder)."""


class TrainingError(FamiposeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""
