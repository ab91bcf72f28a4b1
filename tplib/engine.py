"""How features are computed (not what they are): one settings object with good defaults.

A student calls ``extract_features(backbone, split, backbone.default_layer)`` and never needs this
module. The knobs that only change speed, memory or device live in :class:`Engine`;
the active run profile (:func:`tplib.setup`) supplies the defaults, e.g. the ``ci``
profile pins fp32 on the CPU so stored notebook outputs are the same on every machine.

Options are checked when an ``Engine`` is made, and the device when it is resolved,
so a wrong value fails before any image is decoded. torch is imported only inside
the functions that need it (the command line checks options without it).
"""
from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, replace

from .errors import OptionError, TplibError  # noqa: F401 (OptionError: also tplib.engine.OptionError)

POOLINGS = ("none", "avg", "max", "pyramid")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = ("float32", "float16")
#: Images per forward pass when the engine does not say (``benchmarks/README.md``: on
#: these CPUs VGG16 runs as many images per second one at a time as batched).
DEFAULT_BATCH_SIZE = 16
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Engine:
    """Engine settings of :func:`tplib.extract_features`.

    Attributes:
        batch_size: images per forward pass; None: :data:`DEFAULT_BATCH_SIZE`.
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", "mps".
        precision: "auto" (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32),
            "fp32" (exact, the same numbers on every machine), "bf16" or "fp16".
        threads: image-decoding threads beside the forward pass; 0 decodes between
            batches; None: :func:`resolve_threads`.
        channels_last: NHWC memory format for the convolutions.
        fold_bn: run a copy with each BatchNorm folded into its convolution
            (:mod:`tplib.fusion`: the same function up to float rounding).
        dtype: storage type of the returned features, "float32" or "float16".
        max_bytes: memory budget for the features; None: half the available memory.
    """

    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    channels_last: bool = True
    fold_bn: bool = True
    dtype: str = "float32"
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and (not isinstance(self.batch_size, numbers.Integral)
                                            or isinstance(self.batch_size, bool) or self.batch_size < 1):
            raise OptionError(f"batch size must be a whole number >= 1, not {self.batch_size!r}")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise OptionError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if self.precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.threads is not None and (not isinstance(self.threads, numbers.Integral)
                                         or isinstance(self.threads, bool) or self.threads < 0):
            raise OptionError(f"threads must be 0 or more, not {self.threads!r}")
        if self.dtype not in DTYPES:
            raise OptionError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise OptionError(f"max_bytes must be positive, not {self.max_bytes!r}")

    def replace(self, **changes) -> "Engine":
        """A copy with some settings changed (checked again)."""
        return replace(self, **changes)

    def check_device(self):
        """The ``torch.device`` to run on; a device this machine lacks is an error now."""
        return resolve_device(self.device)


# ------------------------------------------------------------------ resolution
def resolve_device(device="auto"):
    """"auto" -> CUDA if available, else CPU; an unavailable device is an :class:`OptionError`."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {device!r}: this machine has no usable CUDA GPU "
                              "(torch.cuda.is_available() is False); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError(f"device {device!r}: Apple's MPS backend is not available here; use cpu")
    return dev


def cpu_has_native_bf16() -> bool:
    """True if this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device) -> str:
    """"auto" -> fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.

    Without native bf16 the CPU emulates it and fp32 is faster (benchmarks/README.md).
    """
    if precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_threads(threads: int | None, device) -> int:
    """None -> how many threads decode images beside the forward pass.

    On a CPU whose cores all run the network (torch's intra-op threads), decoding
    threads would compete with the forward pass for the same cores, so images are
    decoded between batches there (0). With spare cores, or when a GPU runs the
    network, up to 2 threads decode ahead (measured: benchmarks/README.md).
    """
    import torch

    if threads is not None:
        if threads < 0:
            raise OptionError(f"threads must be 0 or more, not {threads}")
        return threads
    if device.type == "cpu":
        return max(0, min(2, usable_cores() - torch.get_num_threads()))
    return 2
