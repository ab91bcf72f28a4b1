"""Exceptions that carry a message a student can act on.

Every error raised on purpose by ``tplib`` derives from :class:`TplibError`; the
command line prints its message (no traceback) and exits with status 2.
"""


class TplibError(Exception):
    """Base class: the message says what went wrong and what to do."""


class OptionError(TplibError, ValueError):
    """An option value that cannot work (the message names the option and the valid values)."""


class InputError(TplibError, ValueError):
    """Features, labels or images that a call cannot use (the message names the argument)."""


class DataError(TplibError):
    """A data folder is missing, empty or laid out in a way we cannot use."""


class ImageError(TplibError):
    """One image file cannot be decoded (the reason is in the message)."""


class DownloadError(TplibError):
    """A download failed (no network, HTTP error, timeout)."""


class IntegrityError(DownloadError):
    """A downloaded or placed file has the wrong size or checksum."""


class UnsafeArchiveError(TplibError):
    """An archive member would be written outside the target folder."""


class WeightsError(TplibError):
    """Pretrained weights are truncated, corrupt or do not fit the model."""


class MissingWeightsError(WeightsError):
    """Pretrained weights are not here (not cached, no network, package not installed).

    The one case in which :func:`tplib.resolve_backbone` may use a labelled substitute.
    """


class LayerError(TplibError, KeyError):
    """An unknown layer or model name (the message lists the valid ones)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MemoryBudgetError(TplibError):
    """Features would not fit in memory; the message suggests pooling."""


class CacheUnavailableError(TplibError):
    """The feature cache folder cannot be created or written; features can still be
    computed without it (the message names the folder)."""


class DiskFullError(CacheUnavailableError):
    """The disk of the feature cache is full; the message says how much space the entry needs."""
