"""Self-checks for the lab's exercises: one friendly line, never the answer.

After each exercise a notebook calls one of these with the student's result; the
returned :class:`Verdict` shows as one line (``✔ ...`` or ``✘ ...``) that says whether
the result is right and, when it is not, which usual mistake it looks like, without
giving the expected values away. Each check compares with a reference computed by
tplib itself (the weights' own transforms, the library's extractor, scikit-learn), and
``tests/test_checks.py`` feeds every check the usual wrong answers and odd values
(None, strings, NaN, arrays, functions that raise or never return) in every position.

Promises, kept by construction rather than check by check: at the end of this module
every public ``check_*`` and ``expect_*`` function is wrapped by :func:`_guard`, so

- a check never raises: any error, ``SystemExit`` included (only ``KeyboardInterrupt``
  goes through, so the notebook's stop button still works), becomes a ``✘`` verdict;
- each argument carries a kind (its annotation: :class:`Kind`); arguments the notebook
  supplies (features, backbone, layer, C...) are validated before the check runs, and
  a verdict about an odd value names what was given ("got None", "NaN", "an empty
  array"), never the expected value;
- student code runs through :func:`_call`, under a time limit of :data:`TIME_LIMIT_S`
  seconds per call: an endless loop gives a verdict instead of a hung kernel;
- the one exception to "never raises", in the same wrapper: while nbgrader runs the
  notebook to grade or validate it (:data:`GRADER_ENV` is ``autograde`` or ``validate``),
  a ``✘`` verdict raises :class:`CheckFailed` (an ``AssertionError`` whose message is the
  verdict's line), so the check cell, an nbgrader test, loses its points. A student
  running the notebook never has that variable set and sees the one line.

A student can therefore run a check cell as often as they like.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import threading
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .registry import get_spec
from .svm import RANDOM_STATE, l2_normalize

OK_MARK, NO_MARK = "✔", "✘"

#: The variable nbgrader sets while it executes a notebook: ``autograde`` when it grades
#: a submission, ``validate`` when it validates one (unset when a student runs a cell).
GRADER_ENV = "NBGRADER_EXECUTION"

#: Seconds one call into student code may take before the check gives up on it, on
#: top of five times what the check's own reference computation took on this machine
#: (a busy CPU slows both alike: a forward pass of VGG16 is no endless loop). A test
#: may lower it to see the limit act quickly.
TIME_LIMIT_S = 5.0

# per thread: the extra seconds earned by the running check's reference computation
_ALLOWANCE = threading.local()


def _reset_allowance() -> None:
    _ALLOWANCE.seconds = 0.0


def _allow(seconds: float) -> None:
    """Give student calls of the running check ``5 x seconds`` more (the time the same
    work took the check itself)."""
    _ALLOWANCE.seconds = max(getattr(_ALLOWANCE, "seconds", 0.0), 5.0 * seconds)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``ok`` and one line for the student.

    ``bool(verdict)`` is ``ok``; in a notebook it shows as ``✔ message`` or ``✘ message``.
    """

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{OK_MARK if self.ok else NO_MARK} {self.message}"

    __str__ = __repr__


def passed(message: str) -> Verdict:
    return Verdict(True, message)


def failed(message: str) -> Verdict:
    # one line, whatever an exception text brought in
    return Verdict(False, " ".join(str(message).split()))


# ============================================================ describing odd values
def _an(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _what(value) -> str:
    """A short name for what a student gave ("None", "a str (text in quotes)", "NaN", "an empty
    array (shape (0,))", "a function (top_k)"), for verdicts. Never raises, never calls
    the student's code (no ``repr`` of arbitrary objects)."""
    try:
        if value is None:
            return "None"
        if isinstance(value, bool):
            return f"a bool ({value})"
        # no values echoed: a student's own text or number may hold the expected answer
        if isinstance(value, str):
            return "a str (text in quotes)" if value.strip() else "an empty str"
        if isinstance(value, numbers.Integral):
            return "an int"
        if isinstance(value, numbers.Real):
            return "NaN" if math.isnan(float(value)) else "a float"
        if isinstance(value, type):
            return f"a class ({value.__name__})"
        shape, dtype = getattr(type(value), "shape", None), getattr(type(value), "dtype", None)
        if shape is not None and dtype is not None:  # a NumPy array or a torch tensor
            kind = "tensor" if type(value).__module__.startswith("torch") else "array"
            shape = tuple(value.shape)
            if math.prod(shape) == 0:
                return f"an empty {kind} (shape {shape})"
            dt = str(value.dtype).replace("torch.", "")
            text = f"{_an(dt)} {kind} of shape {shape}"
            if _has_nan(value):
                text += " holding NaN"
            return text
        if inspect.isroutine(value):
            return f"a function ({getattr(value, '__name__', '?')})"
        if isinstance(value, (list, tuple, dict, set)):
            name = type(value).__name__
            return f"an empty {name}" if not value else f"{_an(name)} of {len(value)} items"
        if callable(value):
            return f"a callable {type(value).__name__} object"
        return _an(type(value).__name__)
    except Exception:  # noqa: BLE001 - describing must never fail
        return _an(type(value).__name__)


def _has_nan(value) -> bool:
    try:
        import numpy as np

        if type(value).__module__.startswith("torch"):
            return bool(value.is_floating_point() and value.detach().isnan().any())
        arr = np.asarray(value)
        return arr.dtype.kind in "fc" and bool(np.isnan(arr).any())
    except Exception:  # noqa: BLE001
        return False


# ============================================================ kinds of arguments
@dataclass(frozen=True)
class Kind:
    """What one argument of a check should be, used as its annotation.

    ``context``: the notebook supplies it (features, backbone, layer name, C): the
    guard validates it before the check runs. Otherwise it is the student's answer,
    which the check judges itself (with a hint) and ``accepts`` only says whether the
    value is of the right sort at all (the test suite uses it to require that a verdict
    on an odd value names it).
    """

    description: str
    accepts: object  # value -> bool; must not call student code
    context: bool = False

    def ok(self, value) -> bool:
        try:
            return bool(self.accepts(value))
        except Exception:  # noqa: BLE001
            return False


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _is_array(value, ndim=None) -> bool:
    """A non-empty numeric NumPy array / torch tensor without NaN (of ``ndim`` dims)."""
    shape, dtype = getattr(type(value), "shape", None), getattr(type(value), "dtype", None)
    if shape is None or dtype is None:
        return False
    shape = tuple(value.shape)
    kind = getattr(value.dtype, "kind", None)
    numeric = (kind in "iuf") if kind is not None else not getattr(value.dtype, "is_complex", True)
    return (numeric and math.prod(shape) > 0 and (ndim is None or len(shape) == ndim)
            and not _has_nan(value))


def _is_number(value) -> bool:
    if _is_real(value):
        return True
    import numpy as np

    if isinstance(value, np.generic):
        return value.dtype.kind in "iuf" and bool(np.isfinite(value))
    return _is_array(value) and math.prod(tuple(value.shape)) == 1


def _has_static(value, *names) -> bool:
    return not isinstance(value, type) and all(
        inspect.getattr_static(value, n, None) is not None for n in names)


def _is_split(value) -> bool:
    return isinstance(getattr(value, "arrays", None), dict) and _has_static(value, "labels")


def _is_module(value) -> bool:
    from torch import nn

    return isinstance(value, nn.Module)


def _is_optimizer(value) -> bool:
    import torch

    return isinstance(value, torch.optim.Optimizer)


# Answers (judged by the check itself)
Number = Kind("a number", _is_number)
Count = Kind("a number", _is_number)
Function = Kind("a function", lambda v: callable(v) and not isinstance(v, type))
Class = Kind("a class", lambda v: isinstance(v, type))
Tensor = Kind("a tensor", _is_array)
Matrix = Kind("a matrix", lambda v: _is_array(v) or (isinstance(v, (list, tuple)) and bool(v)))
Scores = Kind("a dict {C: accuracy}", lambda v: isinstance(v, dict) and bool(v))
Module = Kind("a network (an nn.Module)", _is_module)
Optimizer = Kind("a torch.optim optimizer", _is_optimizer)
# Context (validated by the guard)
Split = Kind("the Features of one split (e.g. train or test, from tplib.extract)", _is_split,
             context=True)
Backbone = Kind("a backbone (tplib.load_backbone(...))",
                lambda v: _has_static(v, "preprocess") or _has_static(v, "model"), context=True)
Image = Kind("a PIL image (tplib.load_rgb(...))", lambda v: _has_static(v, "convert", "size"),
             context=True)
ImageTensor = Kind("one preprocessed image, a (3, H, W) float tensor",
                   lambda v: _is_array(v, 3) and tuple(v.shape)[0] == 3, context=True)
Maps = Kind("a (C, H, W) tensor of activation maps", lambda v: _is_array(v, 3), context=True)
LayerName = Kind("a layer name (a str such as 'relu7') or None",
                 lambda v: v is None or isinstance(v, str), context=True)
PositiveNumber = Kind("a positive number", lambda v: _is_real(v) and float(v) > 0, context=True)
Folds = Kind("a whole number of folds, at least 2",
             lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 2,
             context=True)
TopK = Kind("a whole number, at least 1",
            lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1,
            context=True)
Bound = Kind("a number", _is_real, context=True)
Label = Kind("a short text (a str)", lambda v: isinstance(v, str), context=True)


def kinds_of(check) -> dict[str, Kind]:
    """{parameter name: Kind} of a check, from its annotations (KeyError if one lacks a kind)."""
    check = getattr(check, "__wrapped__", check)
    out = {}
    for name, param in inspect.signature(check).parameters.items():
        kind = param.annotation
        if isinstance(kind, str):  # postponed annotations: "Number", "checks.Number"
            kind = globals().get(kind.rsplit(".", 1)[-1])
        if not isinstance(kind, Kind):
            raise KeyError(f"{check.__name__}: parameter {name!r} has no Kind annotation")
        out[name] = kind
    return out


# ============================================================ running student code
class _StudentTimeout(BaseException):
    """Raised inside student code that ran past the time limit (BaseException, so that
    the student's own ``except Exception`` does not swallow it)."""

    def __init__(self, what: str, limit: float):
        super().__init__(what, limit)
        self.what, self.limit = what, limit

    def verdict(self) -> Verdict:
        return failed(f"{self.what} did not return within {self.limit:g} s (an endless loop?): "
                      "the check gave up on it")


class _Escaped(Exception):
    """A ``SystemExit`` (or another BaseException) raised by student code, carried as an
    ordinary exception so that each check's ``except Exception`` names it."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _exc_name(exc: BaseException) -> str:
    return type(exc.original if isinstance(exc, _Escaped) else exc).__name__


def _call(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` (student code) under the time limit :data:`TIME_LIMIT_S`
    (plus the allowance the running check earned by timing its own reference).

    ``what`` names the call for the verdict ("top_k(model, x, categories, 5)"). Raises
    :class:`_StudentTimeout` when the call runs too long, :class:`_Escaped` for a
    ``SystemExit`` and the like; ``KeyboardInterrupt`` goes through untouched. In the
    main thread a SIGALRM timer interrupts even a pure-Python endless loop (the
    kernel's thread in Jupyter); elsewhere the call runs in a daemon thread that is
    abandoned when it does not finish in time.
    """
    limit = float(TIME_LIMIT_S) + getattr(_ALLOWANCE, "seconds", 0.0)
    try:
        import signal

        alarm = (threading.current_thread() is threading.main_thread()
                 and hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM"))
    except ImportError:  # pragma: no cover - platforms without signal
        alarm = False
    if alarm:
        return _call_with_alarm(what, limit, fn, args, kwargs)
    return _call_in_thread(what, limit, fn, args, kwargs)


def _call_with_alarm(what, limit, fn, args, kwargs):
    import signal

    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _StudentTimeout(what, limit)

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except (ValueError, OSError):  # signals not available here after all
        return _call_in_thread(what, limit, fn, args, kwargs)
    # the timer repeats every 0.1 s: a bare `except:` in the student's loop catches one
    # interruption, not all of them
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, limit, 0.1)
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, _StudentTimeout, Exception):
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit...
        raise _Escaped(exc) from exc
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay > 0:  # someone else's timer was running: give it its remaining time
            left = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def _call_in_thread(what, limit, fn, args, kwargs):
    import sys

    torch = sys.modules.get("torch")
    grad = torch.is_grad_enabled() if torch is not None else None  # grad mode is per thread
    box: dict = {}

    def run():
        try:
            if torch is not None:
                with torch.set_grad_enabled(grad):
                    box["value"] = fn(*args, **kwargs)
            else:
                box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name="tplib-check-call", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise _StudentTimeout(what, limit)
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, (KeyboardInterrupt, Exception)):
            raise exc
        raise _Escaped(exc)
    return box["value"]


def _raised(what: str, exc: BaseException) -> Verdict:
    """'<what> raised <Error>: <first line>' (the original name for a SystemExit)."""
    if isinstance(exc, _StudentTimeout):
        return exc.verdict()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return failed(f"{what} raised {_exc_name(exc)}{': ' + text if text else ''}")


# ============================================================ the guard
def _guard(check):
    """Wrap a public check: arguments validated by kind, never an exception, bounded time;
    under nbgrader a ``✘`` verdict raises :class:`CheckFailed` (:func:`_for_grader`)."""
    signature = inspect.signature(check)
    kinds = kinds_of(check)

    def verdict_of(*args, **kwargs) -> Verdict:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            return failed(f"{check.__name__}: {exc}")
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            kind = kinds[name]
            if kind.context and not kind.ok(value):
                return failed(f"{name} should be {kind.description}, got {_what(value)}")
        _reset_allowance()
        try:
            verdict = check(*bound.args, **bound.kwargs)
        except KeyboardInterrupt:
            raise
        except _StudentTimeout as exc:
            return exc.verdict()
        except BaseException as exc:  # noqa: BLE001 - a check cell always prints one line
            _reset_allowance()
            odd = [f"{name} is {_what(value)}" for name, value in bound.arguments.items()
                   if not kinds[name].ok(value)]
            why = f"{_exc_name(exc)}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            return failed(f"could not check this answer ({'; '.join(odd) + ', ' if odd else ''}"
                          f"{why.rstrip(': ')})")
        if not isinstance(verdict, Verdict):  # pragma: no cover - a check's own bug
            return failed(f"could not check this answer ({check.__name__} gave no verdict)")
        _reset_allowance()
        return verdict

    @functools.wraps(check)
    def guarded(*args, **kwargs):
        return _for_grader(verdict_of(*args, **kwargs))

    guarded.__wrapped__ = check
    return guarded


class CheckFailed(AssertionError):
    """A ``✘`` verdict while nbgrader grades or validates: the test cell fails.

    An ``AssertionError``, the usual failure of an nbgrader test cell; its message is the
    verdict's one line (what the student would have seen), shown in the feedback."""


def _for_grader(verdict: Verdict) -> Verdict:
    """The verdict, or :class:`CheckFailed` for a ``✘`` while nbgrader executes the
    notebook (:data:`GRADER_ENV`): only then must a wrong answer fail its cell."""
    if not verdict.ok and os.environ.get(GRADER_ENV) in ("autograde", "validate"):
        raise CheckFailed(str(verdict))
    return verdict


def _as_int(value, allow_float: bool = True):
    """An int from an int-like answer (int, numpy integer, 0-d tensor; an integral float
    when ``allow_float``), else None."""
    if isinstance(value, bool):
        return None
    if hasattr(value, "shape") and tuple(value.shape) == () and hasattr(value, "item"):
        value = value.item()  # 0-d tensor or numpy scalar
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if allow_float and isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# ------------------------------------------------------------------ notebooks 01-03
# VGG16's fully connected layers (in_features, out_features): fc6 reads pool5's
# 512 x 7 x 7 maps flattened, fc7 is 4096 -> 4096, fc8 gives the 1000 ImageNet scores.
VGG16_FC = ((7 * 7 * 512, 4096), (4096, 4096), (4096, 1000))
VGG16_TOTAL = 138_357_544


def check_fc_estimate(value: Number) -> Verdict:
    """Notebook 01: the number of weights in VGG16's fc6, fc7 and fc8 (biases left out).

    Recognises: biases included, one or two layers forgotten (naming which), fc6's
    input size mistyped (e.g. 4096 x 4096, or 512 without the 7 x 7), the whole
    network's count, millions.
    """
    weights = [i * o for i, o in VGG16_FC]
    biases = [o for _, o in VGG16_FC]
    right = sum(weights)
    n = _as_int(value)
    if n is None:
        if isinstance(value, float) and 50 < value < 500:
            return failed("give the exact count as a whole number, not millions")
        return failed(f"give a whole number (an int), not {_what(value)}")
    if n == right:
        return passed("right: fc6, fc7 and fc8 hold that many weights (in_features x out_features each)")
    if n == right + sum(biases):
        return failed("that count includes the biases; the estimate asked for counts the weights only")
    if n == VGG16_TOTAL:
        return failed("that is the whole network's count; the estimate is for the three fc layers only")
    if 100 <= n <= 200:
        return failed("give the exact count as a whole number, not millions")
    names = ("fc6", "fc7", "fc8")
    for with_bias in (0, 1):
        for kept in ((0, 1), (0, 2), (1, 2), (0,), (1,), (2,)):
            if n == sum(weights[k] + with_bias * biases[k] for k in kept):
                missing = [names[k] for k in range(3) if k not in kept]
                if len(kept) == 1:
                    return failed(f"only {names[kept[0]]} is counted: add {missing[0]} and "
                                  f"{missing[1]} (each in_features x out_features)")
                return failed(f"one fully connected layer is missing ({missing[0]}): add up fc6, "
                              "fc7 and fc8")
    for with_bias in (0, 1):
        # fc6's input typed wrong, everything else right: fc6 = (something) x 4096, where
        # the something looks like a feature-map size (channels x side x side)
        rest = n - (weights[1] + weights[2]) - with_bias * sum(biases)
        if rest > 0 and rest % 4096 == 0 and _looks_like_map_size(rest // 4096):
            return failed("fc6 looks wrong: its input is pool5's output flattened "
                          "(channels x height x width of pool5's maps)")
    return failed("not the fc layers' weight count: each layer has in_features x out_features weights; "
                  "add up the three")


def _looks_like_map_size(size: int) -> bool:
    """True if ``size`` is C x S x S for a VGG-like channel count C and side S (or 4096):
    the usual ways of mistyping fc6's input (4096, 512 without the 7 x 7, 256 x 7 x 7)."""
    if size == VGG16_FC[0][0]:
        return False
    channels = (1, 3, 64, 128, 256, 512, 1024, 2048, 4096)
    sides = (1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 28, 56, 112, 224)
    return any(size == c * s * s for c in channels for s in sides) or size in (7 * 512, 49)


def _tensor(x):
    """A float32 torch tensor from a tensor / array-like, or None."""
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    try:
        arr = np.asarray(x)
    except Exception:
        return None
    if arr.dtype.kind not in "biuf" or arr.ndim == 0:
        return None
    return torch.from_numpy(np.ascontiguousarray(arr))


def check_preprocess(x: Tensor, backbone: Backbone, image: Image) -> Verdict:
    """Notebook 02: the student's tensor for ``image`` against the network's own preprocessing.

    ``x`` should equal ``backbone.preprocess(image)``: shape (3, S, S), float, resized
    to S x S, scaled to [0, 1] and normalised with the backbone's mean and std.
    Recognises: channels last (H, W, 3), wrong size or no resize, an integer tensor,
    no normalisation (values in [0, 1]), /255 forgotten, mean and std swapped, only
    the mean subtracted, only divided by the std, channels in BGR order.
    """
    import torch

    prep = backbone.preprocess
    ref = prep(image)
    size = prep.size
    t = _tensor(x)
    if t is None:
        return failed(f"expected a torch tensor of shape (3, {size}, {size}), got {_what(x)}")
    if t.numel() == 0:
        return failed(f"expected a torch tensor of shape (3, {size}, {size}), got {_what(x)}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    shape = tuple(t.shape)
    if t.ndim == 3 and shape[-1] == 3 and shape[0] != 3:
        return failed(f"channels last {shape}: PyTorch wants (3, H, W): use x.permute(2, 0, 1)")
    if t.ndim != 3 or shape[0] != 3:
        return failed(f"expected shape (3, {size}, {size}), got {shape}")
    if shape[1:] != (size, size):
        if shape[1:] == (image.height, image.width):
            return failed(f"not resized: the network expects {size} x {size} images")
        return failed(f"wrong size {shape[1]} x {shape[2]}: resize to {size} x {size} (prep.size)")
    if t.dtype == torch.bool or t.is_complex():
        return failed(f"expected float values, got {_what(x)}")
    if not t.is_floating_point():
        return failed("integer values: convert to float and scale to [0, 1] (divide by 255)")
    t = t.float()
    if not torch.isfinite(t).all():
        return failed("x holds NaN or inf values: was something divided by zero?")
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    u = ref * std + mean  # the resized image in [0, 1]
    candidates = [
        ("ok", ref),
        ("no normalisation: values in [0, 1]; subtract the mean and divide by the std "
         "(prep.mean, prep.std)", u),
        ("not scaled to [0, 1] nor normalised: divide by 255, then subtract the mean and divide by the std",
         u * 255),
        ("/255 forgotten: scale the pixels to [0, 1] before normalising", (u * 255 - mean) / std),
        ("mean and std swapped: subtract the mean, then divide by the std", (u - std) / mean),
        ("only the mean subtracted: divide by the std too", u - mean),
        ("only divided by the std: subtract the mean first", u / std),
        ("channels in BGR order: keep Pillow's RGB order", ref.flip(0)),
    ]

    def rel_error(c):
        spread = float((c - c.mean()).abs().mean()) or 1.0
        return float((t - c).abs().mean()) / spread

    errors = [rel_error(c) for _, c in candidates]
    best = min(range(len(candidates)), key=errors.__getitem__)
    if best == 0 and float((t - ref).abs().max()) < 1e-3:
        return passed("identical to the network's preprocessing "
                      "(its weights' mean and std, the lab's square resize)")
    if best == 0 and errors[0] < 0.1:
        return passed("matches the network's own preprocessing up to resize details "
                      f"(it resizes with {prep.interpolation} interpolation)")
    if best > 0 and errors[best] < 0.25:
        return failed(candidates[best][0])
    return failed(f"not the network's preprocessing: resize the whole image to {size} x {size} "
                  f"({prep.interpolation}), scale to [0, 1], subtract prep.mean, divide by prep.std")


def _topk_pairs(result):
    """[(name, probability float)] from the student's result, or a message saying what is wrong."""
    import torch

    if isinstance(result, torch.Tensor) or not isinstance(result, (list, tuple)):
        return None, ("return a list of (class name, probability) pairs, not "
                      f"{type(result).__name__}")
    pairs = []
    for item in result:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            return None, "return a list of (class name, probability) pairs"
        name, p = item
        if not isinstance(name, str):
            return None, "give class names (categories[i]), not indices, with their probabilities"
        p = p.item() if hasattr(p, "item") else p
        try:
            pairs.append((name, float(p)))
        except (TypeError, ValueError):
            return None, f"the probability of {name!r} is not a number"
    return pairs, ""


class _ScaledScores:
    """Builds a stand-in for the model (an ``nn.Module``) whose 1000 scores are the
    model's, multiplied by ``scale`` and rolled by ``shift`` classes; with the class
    names rolled the same way, a function that really uses its ``model`` and
    ``categories`` arguments finds the same names with other probabilities, while one
    that reads the notebook's ``model`` or ``categories`` does not."""

    @staticmethod
    def make(model, scale: float, shift: int):
        from torch import nn

        class ScaledScores(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = model

            def forward(self, x):
                return self.inner(x).mul(scale).roll(-shift, dims=-1)

        return ScaledScores()


def check_topk(top_k: Function, backbone: Backbone, x: ImageTensor, k: TopK = 5) -> Verdict:
    """Notebook 02: the student's ``top_k(model, x, categories, k)`` against the reference.

    ``x`` is one preprocessed image (3, S, S). The function is called with the model in
    train mode (the model's mode and BatchNorm statistics are restored afterwards), so
    it must switch to eval mode itself; whether it restores the caller's mode at the
    end is its own business (the forward passes are watched, not the final mode).
    A second call, with k=3, another image and a stand-in model whose scores are
    rescaled (and class names shifted to match), shows that the function uses its
    arguments rather than the notebook's variables. Recognises: not written yet, an
    error inside, the forward pass run in train mode, logits instead of probabilities,
    softmax over the wrong dimension, not best first, indices instead of names, k
    ignored, arguments ignored.
    """
    import torch
    from torch import nn

    from .models import train_mode

    if not callable(top_k) or isinstance(top_k, type):
        return failed(f"pass your function itself: check_topk(top_k, backbone, x); got {_what(top_k)}")
    model, categories = backbone.model, list(backbone.categories)
    x = x.detach().float() if isinstance(x, torch.Tensor) else torch.as_tensor(x).float()
    shift = 7 % len(categories)
    other_x = x.flip(-1) + 0.25  # another input: mirrored and brighter
    stand_in = _ScaledScores.make(model, 0.5, shift)
    other_categories = categories[shift:] + categories[:shift]

    def reference(net, inp, cats, kk):
        with torch.no_grad(), train_mode(net):
            net.eval()
            probs = net(inp.unsqueeze(0))[0].softmax(dim=0)
        p, i = probs.topk(kk)
        return [(cats[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]

    start = time.monotonic()
    ref = reference(model, x, categories, k)
    _allow(time.monotonic() - start)  # the student's call does the same work
    ref_other = reference(stand_in, other_x, other_categories, 3)

    def call(net, inp, cats, kk):
        """The student's call with the model in train mode; returns (result, modes seen)."""
        seen: list[bool] = []
        watched = [m for m in net.modules() if m is net or isinstance(
            m, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm))]
        hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
                 for m in watched]
        try:
            with train_mode(net):  # the student's function gets a model in train mode
                out = _call(f"top_k(model, x, categories, {kk})", top_k, net, inp.clone(),
                            list(cats), kk)
        finally:
            for h in hooks:
                h.remove()
        return out, seen

    try:
        result, seen = call(model, x, categories, k)
    except NotImplementedError:
        return failed("your function is not written yet (it raises NotImplementedError)")
    except Exception as exc:  # noqa: BLE001
        return _raised("your function", exc)
    pairs, problem = _topk_pairs(result)
    if pairs is None:
        return failed(problem)
    if len(pairs) != k:
        return failed(f"asked for k={k}, got {len(pairs)} pairs")
    if any(seen):
        return failed("the model was in train mode during your function's forward pass, not in "
                      "eval mode: call model.eval() first")
    ps = [p for _, p in pairs]
    if any(not math.isfinite(p) for p in ps):
        return failed("some probabilities are NaN or infinite")
    if any(p > 1 + 1e-5 or p < -1e-5 for p in ps):
        return failed("these look like logits (raw scores), not probabilities: apply softmax")
    if all(abs(p - 1) < 1e-5 for p in ps):
        return failed("every probability is 1: softmax over the wrong dimension "
                      "(the 1000 classes are the last dimension)")
    if any(a < b - 1e-7 for a, b in zip(ps, ps[1:])):
        return failed("not best first: sort by decreasing probability (torch.topk does)")
    if not _same_pairs(pairs, ref):
        if sum(ps) > 1 + 1e-3:
            return failed("probabilities that sum to more than 1: softmax over the 1000 classes")
        return failed("not the classes and probabilities of the network in eval mode: "
                      "eval mode, forward pass, softmax over the classes, then the k largest")
    try:
        small, seen = call(stand_in, other_x, other_categories, 3)
    except Exception as exc:  # noqa: BLE001
        return _raised("your function with k=3", exc)
    if not isinstance(small, (list, tuple)) or len(small) != 3:
        return failed("your function ignores k: with k=3 it should return 3 pairs")
    pairs, _ = _topk_pairs(small)
    if pairs is None or not seen or any(seen) or not _same_pairs(pairs, ref_other):
        return failed("right for the notebook's image, wrong for another model, image and class "
                      "list: use the function's arguments (model, x, categories, k), not the "
                      "notebook's variables")
    return passed("right: eval mode, softmax probabilities, the k most likely classes, best first")


def _same_pairs(pairs, ref) -> bool:
    return ([n for n, _ in pairs] == [n for n, _ in ref]
            and all(abs(p - q) <= 1e-3 for (_, p), (_, q) in zip(pairs, ref)))


def check_strongest_channel(channel: Number, maps: Maps) -> Verdict:
    """Notebook 03: the index of the channel of ``maps`` (C, H, W) with the largest mean.

    Recognises: a value instead of an index, the weakest channel (argmin), the channel
    with the largest single value (max instead of mean), an index out of range.
    """
    t = _tensor(maps)
    if t is None or t.ndim != 3:
        return failed("maps should be a (C, H, W) tensor of activation maps")
    t = t.float()
    means = t.mean(dim=(1, 2))
    idx = _as_int(channel, allow_float=False)
    if idx is None:
        if _is_number(channel):
            return failed("give the channel's index (an int), not its activation value")
        return failed(f"give the channel's index as an int, not {_what(channel)}")
    if not 0 <= idx < t.shape[0]:
        return failed(f"no channel {idx}: the indices go from 0 to {t.shape[0] - 1}")
    if means[idx] >= means.max() - 1e-6:
        return passed(f"right: channel {idx} has the largest mean activation")
    if means[idx] <= means.min() + 1e-6:
        return failed("that is the weakest channel (smallest mean): argmax, not argmin")
    peaks = t.amax(dim=(1, 2))
    if peaks[idx] >= peaks.max() - 1e-6:
        return failed("that channel has the largest single value (max); the question is the largest mean")
    return failed("not the channel with the largest mean activation: average each map over H and W first")


# ======================================================== notebooks 04 and 05
# 04: the lab's VGG16relu7 class, L2-normalised feature rows, LinearSVC accuracy.
# 05: C chosen by cross-validation on the training split, a trained head's accuracy.

def _layer_of(train, test, layer):
    """(layer, None): the layer both splits hold (their only one by default); or
    (None, verdict) saying what is wrong with ``layer``."""
    held = list(train.arrays)
    if layer is None:
        if len(held) != 1:
            return None, failed(f"these features hold several layers ({', '.join(held)}): "
                                "pass layer=...")
        layer = held[0]
    for split in (train, test):
        if layer not in split.arrays:
            return None, failed(f"layer {layer!r} is not in these features (they hold "
                                f"{', '.join(split.arrays) or 'no layer'})")
    return layer, None


def _reference_relu(vgg, x):
    """relu6 and relu7 of torchvision's VGG16 ``vgg`` on ``x`` (its feature extractor)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    spec = get_spec("vgg16")
    extractor = create_feature_extractor(vgg, {spec.node("relu6"): "relu6", spec.node("relu7"): "relu7"})
    out = extractor(x)
    return out["relu6"], out["relu7"]


#: The seed of the check's VGG16 weights: used nowhere else (tplib.setup seeds torch
#: with the run profile's seed, tplib.build_model uses 0), so a class that builds its
#: own VGG16 instead of using the one it is given cannot land on the same weights.
_VGG_CHECK_SEED = 0x7E57_16
#: relu6 and relu7 of the check's VGG16 on its batch, keyed by a fingerprint of the weights.
_VGG_REFERENCE: dict = {}


def _vgg16_for_check():
    """A fresh VGG16 with the check's own seeded random weights, in eval mode."""
    from .models import build_model

    return build_model("vgg16", seed=_VGG_CHECK_SEED)


def _fingerprint(model) -> tuple:
    return tuple(round(float(p.detach().double().sum()), 6) for p in list(model.parameters())[::4])


def _leaf_modules(model):
    return [m for m in model.modules() if not list(m.children())]


def check_vgg16relu7(cls: Class) -> Verdict:
    """Notebook 04: the student's ``VGG16relu7`` class against torchvision's relu7.

    Builds VGG16's architecture with the check's own seeded random weights (no
    download: comparing two implementations needs no pretrained weights), makes
    ``cls(vgg16)`` and compares its output on a fixed random (2, 3, 224, 224) batch with
    relu7 (``classifier.4``) read by torchvision's feature extractor (the same as
    :class:`tplib.models.VGG16relu7`). Then it changes fc7's bias in the network, makes a new
    ``cls(vgg16)`` and requires the output to follow: the class must compute with the
    network it is given. Any float dtype of the output is fine.
    Usual mistakes named: flatten forgotten, classifier not cut (1000 outputs), cut one
    layer too early (fc7 before its ReLU, or relu6) or too late (the dropout after
    relu7 kept), features not copied, a new VGG16 built instead of using the given one.
    """
    import torch

    if not isinstance(cls, type):
        return failed("pass the class itself (VGG16relu7), not an instance or its output; "
                      f"got {_what(cls)}")
    start = time.monotonic()
    vgg = _vgg16_for_check()
    _allow(time.monotonic() - start)  # how fast this machine is right now
    fc7 = vgg.classifier[3]  # kept now: the student's __init__ may rearrange vgg16
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(_VGG_CHECK_SEED))
    key = _fingerprint(vgg)
    if key not in _VGG_REFERENCE:  # the same seeded weights and batch every time
        start = time.monotonic()
        with torch.no_grad():
            _VGG_REFERENCE.clear()
            relus = _reference_relu(vgg, x)
        _VGG_REFERENCE[key] = (*relus, time.monotonic() - start)
    relu6, relu7, seconds = _VGG_REFERENCE[key]
    _allow(seconds)  # a copy of the network and a forward pass are no endless loop
    model_or_verdict = _build_relu7_model(cls, vgg)
    if isinstance(model_or_verdict, Verdict):
        return model_or_verdict
    model = model_or_verdict
    out = _relu7_forward(model, x)
    if isinstance(out, Verdict):
        return out
    shape = tuple(out.shape)
    if shape == (2, 512, 7, 7):
        return failed("forward returns the (N, 512, 7, 7) maps of features: flatten them and "
                      "run the classifier")
    if shape == (2, 25088):
        return failed("forward stops after the flatten: run the classifier (fc6 .. relu7) too")
    if shape == (2, 1000):
        return failed("1000 outputs: that is fc8, the ImageNet classes; cut the classifier "
                      "before its last Dropout and Linear (classifier[:-2])")
    if len(shape) != 2 or shape[0] != 2:
        return failed(f"forward should give one row per image, (N, 4096); got {shape}")
    if shape[1] != 4096:
        return failed(f"{shape[1]} values per image: relu7 has 4096")
    if not torch.isfinite(out).all():
        return failed("forward gives NaN or infinite values")
    if (out < 0).any():
        return failed("negative values: the output is fc7 before its ReLU; cut one layer "
                      "later (keep relu7)")
    if torch.allclose(out, relu7, rtol=1e-4, atol=1e-5):
        leaves = _leaf_modules(model)
        if leaves and isinstance(leaves[-1], torch.nn.Dropout):
            return failed("the right values in eval mode, but the class ends with the Dropout "
                          "after relu7 (in train mode it would zero half the features): cut it too")
        # The same class on a changed network must follow the change (not a copy of
        # another VGG16, nor a model kept from an earlier call).
        with torch.no_grad():
            pre = relu6 @ fc7.weight.T + fc7.bias
            delta = torch.randn(fc7.bias.shape, generator=torch.Generator().manual_seed(1)) * (
                2 * float(pre.std()) + 1e-3)
            fc7.bias.add_(delta)
            expected = torch.relu(pre + delta)
        again = _build_relu7_model(cls, vgg)
        if isinstance(again, Verdict):
            return again
        out2 = _relu7_forward(again, x)
        if isinstance(out2, Verdict):
            return out2
        if tuple(out2.shape) != tuple(expected.shape) or not torch.allclose(
                out2, expected, rtol=1e-4, atol=1e-5):
            return failed("4096 values, but not computed with the network passed to __init__: "
                          "copy vgg16.features and vgg16.classifier, do not build a new VGG16 "
                          "(nor keep one from an earlier call)")
        return passed("VGG16relu7 gives the same relu7 features as torchvision's VGG16 "
                      f"({get_spec('vgg16').node('relu7')}), shape (N, 4096)")
    if torch.allclose(out, relu6, rtol=1e-4, atol=1e-5):
        return failed("these are relu6's values (after fc6): cut the classifier later, after relu7")
    shared = {p.data_ptr() for p in vgg.parameters()}
    mine = [p for p in model.parameters()]
    if mine and not any(p.data_ptr() in shared for p in mine) and not any(
            torch.equal(p, q) for p, q in zip(mine[:1], list(vgg.parameters())[:1])):
        return failed("4096 values, but not computed with the network passed to __init__: copy "
                      "vgg16.features and vgg16.classifier, do not build a new VGG16")
    return failed("4096 non-negative values, but not relu7's: keep vgg16.features whole, then "
                  "flatten, then classifier[:-2]")


def _build_relu7_model(cls, vgg):
    """``cls(vgg)`` in eval mode, or a verdict saying why not."""
    import torch

    try:
        model = _call("VGG16relu7(vgg16)", cls, vgg)
    except NotImplementedError:
        return failed("__init__ is not written yet (it still raises NotImplementedError)")
    except Exception as exc:  # noqa: BLE001 - any error is a verdict, not a crash
        return _raised("VGG16relu7(vgg16)", exc)
    if not isinstance(model, torch.nn.Module):
        return failed("VGG16relu7 must subclass torch.nn.Module")
    try:
        _call("model.eval()", model.eval)
    except Exception as exc:  # noqa: BLE001
        return _raised("model.eval()", exc)
    return model


def _relu7_forward(model, x):
    """The student's output on ``x`` as float32, or a verdict."""
    import torch

    try:
        with torch.no_grad():
            out = _call("forward", model, x.clone())
    except NotImplementedError:
        return failed("forward is not written yet (it still raises NotImplementedError)")
    except RuntimeError as exc:
        text = str(exc)
        if "mat1 and mat2" in text and "x7 and 25088x" in text:
            return failed("the classifier got (N, 512, 7, 7) maps: flatten them to (N, 25088) "
                          "between features and classifier")
        if "mat1 and mat2" in text:
            return failed("the classifier got inputs of the wrong size: does forward run "
                          "self.features first, then flatten, then self.classifier?")
        return _raised("forward", exc)
    except Exception as exc:  # noqa: BLE001 - a verdict, never a crash
        return _raised("forward", exc)
    if not isinstance(out, torch.Tensor):
        return failed(f"forward must return a tensor, not {_what(out)}")
    if not out.is_floating_point():
        return failed(f"forward must return float values, not {_what(out)}")
    return out.detach().cpu().float()


# 04: the extraction written by hand (the work is tplib.extraction's)
ImageSplit = Kind("a data split of image files (e.g. data.train, with .paths and .labels)",
                  lambda v: _has_static(v, "paths", "labels"), context=True)
Labels = Kind("labels (one class index per row)",
              lambda v: _is_array(v, 1) or (isinstance(v, (list, tuple)) and bool(v)))


def check_extracted_features(X: Matrix, y: Labels, split: ImageSplit, backbone: Backbone,
                             layer: LayerName = None) -> Verdict:
    """Notebook 04: the student's X (one L2-normalised row per image) and y for ``split``.

    Compares the rows with :func:`tplib.extract_features` on the same images (cached) and
    names the usual mistake (:func:`tplib.extraction.diagnose_extraction`): missing or
    zero rows (a partial last batch), rows out of label order (a shuffled loader), train
    mode, a graph kept (tensors that require grad), no or wrong normalisation, another
    size, interpolation or channel order, rows not L2-normalised, a torch tensor where a
    NumPy array is expected. Harmless differences pass (float64, a batch size).
    """
    import numpy as np
    import torch

    from .extraction import diagnose_extraction

    for name, value in (("X", X), ("y", y)):
        if not isinstance(value, (np.ndarray, torch.Tensor, list, tuple)) or (
                getattr(value, "size", None) == 0 and not isinstance(value, torch.Tensor)):
            what = ("a NumPy array (n_images, D), one row per image" if name == "X"
                    else "the labels, one class index per row")
            return failed(f"{name} should be {what}; got {_what(value)}")
    found = diagnose_extraction(X, y, split, backbone, layer)
    return Verdict(found.ok, " ".join(found.message.split()))


def _as_matrix(X, name):
    """(float64 array, low_precision, None) from the student's matrix, or (None, None, verdict)."""
    import numpy as np

    half = False
    if type(X).__module__.startswith("torch") and hasattr(X, "requires_grad"):
        if X.requires_grad:
            return None, None, failed(f"{name} is a tensor that still tracks gradients: "
                                      "scikit-learn needs NumPy arrays (.detach().numpy())")
        half = str(X.dtype) in ("torch.float16", "torch.bfloat16")
        X = X.detach().cpu().float().numpy()
    if not isinstance(X, (np.ndarray, list, tuple)):
        return None, None, failed(f"{name} should be a NumPy array (n_images, n_features), got "
                                  f"{_what(X)}")
    try:
        half = half or np.asarray(X).dtype == np.float16
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return None, None, failed(f"{name} should be a NumPy array (n_images, n_features) of "
                                  f"numbers, got {_what(X)}")
    if arr.size == 0:
        return None, None, failed(f"{name} is empty (shape {arr.shape}): one row per image")
    if arr.ndim != 2:
        return None, None, failed(f"{name} should be a matrix (n_images, n_features); its shape "
                                  f"is {arr.shape}")
    return arr, half, None


def _check_rows(X, name, raw, other_raw, raw_half):
    """Verdict for one normalised matrix ``X`` against the raw rows ``raw`` (n, d).

    float16 features (or a float16 answer) are judged with float16's precision: the
    notebook's own solution on them gives row norms within a few 1e-3 of 1.
    """
    import numpy as np

    from .svm import l2_normalize

    arr, half, bad = _as_matrix(X, name)
    if bad is not None:
        return bad
    norm_tol = 1e-2 if (half or raw_half) else 1e-3
    n, d = raw.shape
    if arr.shape == (d, n) and n != d:
        return failed(f"{name} has one column per image: it needs one row per image "
                      f"(n_images, n_features); transpose it")
    if arr.shape[0] != n:
        return failed(f"{name} has {arr.shape[0]} rows but the split has {n} images: one row "
                      "per image")
    if arr.shape[1] != d:
        return failed(f"{name} has {arr.shape[1]} values per row but the layer gives {d}")
    if not np.isfinite(arr).all():
        return failed(f"{name} holds NaN or inf values: was a row of zeros divided by its norm?")
    norms = np.linalg.norm(arr, axis=1)
    zero = int((norms < 1e-6).sum())
    if zero:
        return failed(f"{name} has {zero} all-zero row(s): every image needs its features")
    if not np.allclose(norms, 1.0, atol=norm_tol):
        col_norms = np.linalg.norm(arr, axis=0)
        used = col_norms > 1e-6
        if used.any() and np.allclose(col_norms[used], 1.0, atol=norm_tol):
            return failed(f"{name}: the columns have unit length, not the rows: normalise along "
                          "axis=1 (each image's row)")
        if np.allclose(arr, raw, rtol=1e-2 if half or raw_half else 1e-4, atol=1e-6):
            return failed(f"{name} is not normalised yet: divide each row by its L2 norm")
        return failed(f"{name}: the rows do not all have unit L2 norm (axis=1, keepdims=True)")
    ref = l2_normalize(raw).astype(np.float64)
    unit = arr / norms[:, None]
    # each row points the same way as the reference row (cosine 1 up to rounding)
    if (np.einsum("ij,ij->i", unit, ref) > 1 - 1e-4).all():
        return None
    if other_raw is not None and other_raw.shape == raw.shape and (np.einsum(
            "ij,ij->i", unit, l2_normalize(other_raw).astype(np.float64)) > 1 - 1e-4).all():
        return failed(f"{name} holds the other split's features: train goes with train, test "
                      "with test")
    cos = ref @ unit.T
    if (cos.max(axis=0) > 1 - 1e-4).all():
        return failed(f"{name} has the right rows in another order: keep the order of the "
                      "labels (do not sort or shuffle)")
    return failed(f"{name} has unit rows, but they are not the normalised features of this "
                  "split and layer")


def check_l2_features(X_train: Matrix, X_test: Matrix, train: Split, test: Split,
                      layer: LayerName = None) -> Verdict:
    """Notebook 04: one L2-normalised row per image, in the order of the labels.

    Args:
        X_train, X_test: the student's matrices (NumPy arrays, lists or tensors
            without gradient; float16 is judged with float16's precision).
        train, test: the :class:`tplib.features.Features` they were made from.
        layer: the layer read (default: the features' only layer).

    Flags: not normalised, columns normalised instead of rows, zero or NaN rows, wrong
    shape (transposed, wrong number of rows), rows reordered, splits swapped.
    """
    import numpy as np

    layer, bad = _layer_of(train, test, layer)
    if bad is not None:
        return bad
    raw_half = any(np.asarray(f[layer]).dtype == np.float16 for f in (train, test))
    raw_train = np.asarray(train[layer], dtype=np.float64)
    raw_test = np.asarray(test[layer], dtype=np.float64)
    for name, X, raw, other in (("X_train", X_train, raw_train, raw_test),
                                ("X_test", X_test, raw_test, raw_train)):
        verdict = _check_rows(X, name, raw, other, raw_half)
        if verdict is not None:
            return verdict
    return passed(f"X_train {raw_train.shape[0]} x {raw_train.shape[1]} and X_test "
                  f"{raw_test.shape[0]} x {raw_test.shape[1]}: one unit-length row per image, "
                  "in label order")


def _as_accuracy(value, what="accuracy"):
    import numpy as np

    if not _is_number(value) and not (isinstance(value, float) and math.isnan(value)):
        return None, failed(f"{what} should be a number (e.g. svm.score(X_test, y_test)), not "
                            f"{_what(value)}")
    value = float(value.item() if hasattr(value, "item") else value)
    if not np.isfinite(value):
        return None, failed(f"{what} is {'NaN' if np.isnan(value) else value}")
    if 1.0 < value <= 100.0:
        return None, failed(f"{what} should be a fraction between 0 and 1, not a percentage")
    if not 0.0 <= value <= 1.0:
        return None, failed(f"{what} must lie between 0 and 1")
    return value, None


def check_svm_accuracy(accuracy: Number, train: Split, test: Split, layer: LayerName = None,
                       C: PositiveNumber = 1.0) -> Verdict:
    """Notebook 04: the test accuracy of ``LinearSVC(C)`` fitted on the training rows.

    The reference is :func:`tplib.svm_fit_score` on the same features (L2 rows, fixed
    seed); an accuracy within 1 point (at least 2 test images) of it passes, so another
    ``random_state`` is fine. Flags an SVM scored on its training images (about 1.0),
    fitted on the test split, or fed unnormalised rows.
    """
    from .svm import fit_and_score, make_svm, svm_fit_score

    value, bad = _as_accuracy(accuracy)
    if bad is not None:
        return bad
    layer, bad = _layer_of(train, test, layer)
    if bad is not None:
        return bad
    Xtr, ytr, Xte, yte = train[layer], train.labels, test[layer], test.labels
    try:
        ref = svm_fit_score(Xtr, ytr, Xte, yte, C=C).accuracy
    except Exception as exc:  # noqa: BLE001 - a verdict, never a crash
        return failed(f"cannot compute the reference: {exc}")
    tol = max(0.01, 2.0 / len(yte))
    if abs(value - ref) <= tol:
        return passed("test accuracy as expected for these features (LinearSVC fitted on "
                      "X_train, scored on X_test)")
    from .svm import l2_normalize

    ntr, nte = l2_normalize(Xtr), l2_normalize(Xte)
    suspects = [
        (fit_and_score(make_svm(C), ntr, ytr, ntr, ytr).accuracy,
         "the SVM was scored on the images it was fitted on (X_train): score it on X_test, y_test"),
        (fit_and_score(make_svm(C), nte, yte, ntr, ytr).accuracy,
         "the SVM was fitted on the test split: fit on X_train, y_train; score on X_test, y_test"),
        (fit_and_score(make_svm(C), nte, yte, nte, yte).accuracy,
         "the SVM was fitted and scored on the test split: fit on X_train, y_train"),
        (svm_fit_score(Xtr, ytr, Xte, yte, C=C, l2=False).accuracy,
         "this is what unnormalised rows give: fit on the L2-normalised X_train"),
    ]
    for expected, hint in suspects:
        if abs(value - expected) <= 1e-9:
            return failed(hint)
    if value >= 0.98 and ref < 0.97:
        return failed("an accuracy this close to 1 means the SVM was scored on images it was "
                      "fitted on: fit on X_train, score on X_test")
    for expected, hint in suspects[3:]:
        if abs(value - expected) <= tol:
            return failed(hint)
    return failed(f"the accuracy is more than {tol * 100:.1f} points away from what these features "
                  f"give: LinearSVC(C={C:g}) fitted on X_train, y_train and scored on X_test, y_test")


def _cv_curve(X, y, Cs, cv) -> list[float]:
    """Mean held-out accuracy of ``LinearSVC(C)`` (the library's seed) per C over ``cv``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_val_score

    from .svm import make_svm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return [float(cross_val_score(make_svm(c), X, y, cv=cv).mean()) for c in Cs]


def check_c_search(best_C: Number, scores: Scores, train: Split, test: Split,
                   layer: LayerName = None, folds: Folds = 5) -> Verdict:
    """Notebook 05: C chosen by cross-validation on the training split only.

    Args:
        best_C: the student's chosen C; scores: their {C: accuracy} dict.
        train, test: the :class:`tplib.features.Features` used; layer: the layer read.
        folds: the number of folds of the reference searches.

    Judged by behaviour, on the (at most 3) best-scored Cs: a train-only cross-validation
    with any folds (k-fold, shuffled or not, 3 to 10 folds) lands in a band made of
    several such searches (``folds`` folds in order and shuffled, 3 shuffled folds),
    widened by the sampling noise of an accuracy on the training split. The scores are
    also compared with what the leaks give: each C's accuracy on the test split (C tuned
    on the test split), a cross-validation over train and test pooled together (test
    images in the folds), and the training accuracy (no held-out fold). Scores equal to
    a leak's, or outside the band and nearer to a leak that stands apart from it, are
    named as that leak.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from .svm import fit_and_score, l2_normalize, make_svm, svm_fit_score

    if not isinstance(scores, dict) or not scores:
        return failed(f"scores should be a dict {{C: mean cross-validation accuracy}}, got {_what(scores)}")
    try:
        Cs = [float(c) for c in scores]
        values = np.array([float(scores[c]) for c in scores])
    except (TypeError, ValueError):
        return failed("scores should map each C (a number) to an accuracy (a number)")
    if np.isnan(values).any():
        return failed("the scores hold NaN: every score should be an accuracy between 0 and 1")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        return failed("every score should be an accuracy between 0 and 1")
    if not all(math.isfinite(c) and c > 0 for c in Cs):
        return failed("every C should be a positive number (e.g. 0.01 to 100)")
    if len(Cs) < 2:
        return failed("try several values of C (e.g. 0.01 to 100), not one")
    if not _is_number(best_C):
        return failed(f"best_C should be a number, not {_what(best_C)}")
    best = float(best_C.item() if hasattr(best_C, "item") else best_C)
    if not any(np.isclose(best, c) for c in Cs):
        return failed("best_C should be one of the values tried")
    best_score = values[[np.isclose(best, c) for c in Cs].index(True)]
    if best_score < values.max() - 1e-12:
        return failed("best_C is not the C with the highest score")
    layer, bad = _layer_of(train, test, layer)
    if bad is not None:
        return bad
    Xtr, ytr = l2_normalize(train[layer]), np.asarray(train.labels)
    Xte, yte = l2_normalize(test[layer]), np.asarray(test.labels)
    smallest = int(np.bincount(ytr)[np.bincount(ytr) > 0].min())
    k = min(folds, smallest)
    if k < 2:
        return failed("the training split has a class with a single image: no cross-validation "
                      "is possible")
    # the best-scored Cs carry the information (tiny Cs collapse whatever the split)
    judged = np.argsort(-values, kind="stable")[:3]
    Cj, v = [Cs[i] for i in judged], values[judged]
    schemes = [StratifiedKFold(k, shuffle=False), StratifiedKFold(k, shuffle=True, random_state=0),
               StratifiedKFold(min(3, k), shuffle=True, random_state=1)]
    curves = np.array([_cv_curve(Xtr, ytr, Cj, cv) for cv in schemes])
    lo, hi = curves.min(axis=0), curves.max(axis=0)
    p = np.clip(curves.mean(axis=0), 0.05, 0.95)
    tol = max(0.02, 2 * float(np.sqrt(p * (1 - p) / len(ytr)).mean()))
    d_cv = float(np.mean(np.maximum(0, np.maximum(lo - v, v - hi))))
    leaks = {
        "test": (np.array([svm_fit_score(train[layer], ytr, test[layer], yte, C=c).accuracy
                           for c in Cj]),
                 "these scores are test accuracies: C was tuned on the test split. Score "
                 "each C by cross-validation on the training split only"),
        "pooled": (np.array(_cv_curve(np.vstack([Xtr, Xte]), np.concatenate([ytr, yte]), Cj,
                                      StratifiedKFold(k, shuffle=True, random_state=0))),
                   "these scores come from a cross-validation over the training and test images "
                   "pooled together: the test images took part in choosing C. Cross-validate "
                   "on the training split only"),
        "train": (np.array([fit_and_score(make_svm(c), Xtr, ytr, Xtr, ytr).accuracy for c in Cj]),
                  "these are training accuracies: each SVM was scored on the images it was "
                  "fitted on; score it on held-out folds of the training split"),
    }
    if any(np.abs(curve - v).max() <= 1e-9 for curve in curves):
        return passed("C chosen by cross-validation on the training split only")
    distance = {name: float(np.abs(curve - v).mean()) for name, (curve, _) in leaks.items()}
    for name, (_, hint) in leaks.items():
        if distance[name] <= 1e-9:
            return failed(hint)
    # a leak is named only when its curve stands apart from the band (else the scores
    # cannot tell it from an honest search) and the scores are nearer to it than to the band
    apart = {name: float(np.mean(np.maximum(0, np.maximum(lo - curve, curve - hi))))
             for name, (curve, _) in leaks.items()}
    named = [name for name in leaks if apart[name] >= 0.01 and distance[name] < d_cv
             and distance[name] <= tol]
    if named:
        return failed(leaks[min(named, key=distance.get)][1])
    if d_cv <= tol:
        return passed("C chosen by cross-validation on the training split only")
    return failed("these scores are far from a cross-validation on the training split: fit on "
                  "k-1 folds, score on the held-out fold, average over the folds")


def check_head_accuracy(head_accuracy: Number, svm_accuracy: Number, *, below: Bound = 0.06,
                        above: Bound = 0.06) -> Verdict:
    """Notebook 05: a trained linear head within a band around the SVM's accuracy.

    Gradient training can move a test accuracy by an image or two between machines, so
    the notebook prints this stable verdict rather than comparing the number itself.
    Passes when ``svm - below <= head <= svm + above``.
    """
    head, bad = _as_accuracy(head_accuracy, "the head's accuracy")
    if bad is not None:
        return bad
    svm, bad = _as_accuracy(svm_accuracy, "the SVM's accuracy")
    if bad is not None:
        return bad
    if head < svm - below:
        return failed(f"the trained head is more than {below * 100:g} points below the SVM: more "
                      "epochs, another learning rate?")
    if head > svm + above:
        return failed(f"the trained head is more than {above * 100:g} points above the SVM on the "
                      "same features: was it evaluated on its training rows?")
    return passed(f"the trained linear layer is within {max(below, above) * 100:g} points of the "
                  "SVM's accuracy on the same features")


# =============================================================================
# Notebook 06: fine-tuning a new head (freezing, new head, optimizer, loss, step,
# evaluation). The references are torch's own (BCEWithLogitsLoss, a textbook step).
# =============================================================================
def _as_float(value):
    """A Python number from a float, an int or a one-element tensor/array; else None."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return float(value.detach()) if value.numel() == 1 else None
        if isinstance(value, bool):
            return None
        return float(value)
    except (TypeError, ValueError):
        return None


def expect_between(value: Number, low: Bound, high: Bound, what: Label) -> Verdict:
    """A stable line for a number that training makes machine-dependent (notebook 06).

    ``✔ <what> within the expected range`` when ``low <= value <= high``, else
    ``✘`` with the range; the value itself is not printed (it is printed, unchecked, in
    the cell before), so the line is the same on every machine.
    """
    number = _as_float(value)
    if number is None or math.isnan(number):
        return failed(f"{what}: expected a number, got {_what(value)}")
    if low <= number <= high:
        return passed(f"{what} within the expected range [{low:g}, {high:g}]")
    return failed(f"{what} outside the expected range [{low:g}, {high:g}]: look for a bug")


def check_frozen(model: Module) -> Verdict:
    """Every parameter of ``model`` has ``requires_grad=False`` (notebook 06, freezing).

    Flags: nothing frozen, ``model.requires_grad = False`` (a plain attribute),
    ``model.eval()`` taken for freezing, some parameters left trainable.
    """
    from torch import nn

    if not isinstance(model, nn.Module):
        return failed(f"expected the network (an nn.Module), got {_what(model)}")
    params = list(model.named_parameters())
    if not params:
        return failed("this module has no parameters: pass the whole network")
    trainable = [name for name, p in params if p.requires_grad]
    if not trainable:
        return passed(f"all {len(params)} parameter tensors are frozen (requires_grad=False): "
                      "no gradient is computed for them and no optimizer step can change them")
    if len(trainable) == len(params):
        if model.__dict__.get("requires_grad") is False:
            return failed("model.requires_grad = False only sets a plain attribute on the module; "
                          "set it on every parameter (model.parameters()) or call "
                          "model.requires_grad_(False)")
        if not model.training:
            return failed("model.eval() changes how dropout and BatchNorm behave, not what is "
                          "trained: every parameter still has requires_grad=True")
        return failed("nothing is frozen: every parameter still has requires_grad=True")
    return failed(f"{len(trainable)} of {len(params)} parameter tensors are still trainable "
                  f"(the first: {trainable[0]}); freeze them all (the new head comes after)")


def _head_outputs(head, x):
    """The head's output on ``x`` in eval mode (no gradient) and in train mode (with
    gradients reaching its parameters): (eval_out, train_out, grads_flow) or an error text."""
    import torch

    try:
        with torch.no_grad():
            _call("head.eval()", head.eval)
            out = _call("head(x)", head, x)
    except _StudentTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - any error is the student's to see
        return None, f"{_exc_name(exc)}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not isinstance(out, torch.Tensor):
        return None, f"it returns {_what(out)}, not a tensor"
    try:
        _call("head.train()", head.train)
        with torch.enable_grad():
            trained = _call("head(x)", head, x)
            flows = False
            if isinstance(trained, torch.Tensor) and trained.requires_grad:
                weights = torch.randn(trained.shape, generator=torch.Generator().manual_seed(3))
                grads = torch.autograd.grad((trained * weights).sum(),
                                            [p for p in head.parameters() if p.requires_grad],
                                            allow_unused=True)
                flows = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    except _StudentTimeout:
        raise
    except Exception as exc:  # noqa: BLE001
        return None, f"{_exc_name(exc)} in train mode: {str(exc).splitlines()[0] if str(exc) else ''}"
    return (out.detach(), trained.detach() if isinstance(trained, torch.Tensor) else None,
            flows), None


def check_new_head(new_head: Function) -> Verdict:
    """``new_head(in_features, n_classes, loss="ce")`` returns the right trainable layer.

    Expected: one score per class for cross-entropy ("ce"), one logit for binary
    cross-entropy ("bce"), taking ``in_features`` inputs, every parameter trainable.
    Tried on (4096, 2), (4096, 15), (1280, 2) and (1280, 2, "bce"), each on a batch of
    64 random feature vectors, and judged by what comes out, not by the module types:
    raw scores (logits) that take both signs and vary with the input, not squashed into
    [0, 1] (sigmoid or softmax, even inside ``forward``), not log-probabilities, not
    zeroed in train mode (``Dropout(1.0)``), with gradients reaching the parameters.
    """
    import torch
    from torch import nn

    if not callable(new_head) or isinstance(new_head, type):
        return failed(f"expected the function new_head, got {_what(new_head)}")
    gen = torch.Generator().manual_seed(66)
    for in_features, n_classes, loss in ((4096, 2, "ce"), (4096, 15, "ce"), (1280, 2, "ce"),
                                         (1280, 2, "bce")):
        call = f"new_head({in_features}, {n_classes}, loss={loss!r})"
        try:
            head = _call(call, new_head, in_features, n_classes, loss=loss)
        except Exception as exc:  # noqa: BLE001
            return _raised(call, exc)
        if not isinstance(head, nn.Module):
            return failed(f"{call} returned {_what(head)}, not a layer (nn.Module)")
        params = list(head.parameters())
        if not params:
            return failed(f"{call} has no parameters to train")
        x = torch.randn(64, in_features, generator=gen)
        outputs, error = _head_outputs(head, x)
        if error:
            return failed(f"{call} does not take {in_features} input features ({error})")
        out, trained, flows = outputs
        shape = tuple(out.shape)
        expected = 1 if loss == "bce" else n_classes
        if len(shape) != 2 or shape[0] != len(x):
            return failed(f"{call} gives outputs of shape {shape} for {len(x)} inputs: one row "
                          "of scores per image expected")
        if shape[1] != expected:
            if shape[1] == 1000:
                return failed(f"{call} still gives 1000 scores, ImageNet's classes: the new "
                              "layer must fit the new task")
            if loss == "bce":
                return failed(f"{call} gives {shape[1]} outputs: with binary cross-entropy the "
                              "head gives ONE logit (the score of class 1)")
            return failed(f"{call} gives {shape[1]} outputs: cross-entropy needs one score per class")
        if any(not p.requires_grad for p in params):
            return failed(f"{call} is frozen (requires_grad=False): the new head is what trains")
        out = out.float()
        if not torch.isfinite(out).all():
            return failed(f"{call} gives NaN or infinite scores")
        if bool((out >= 0).all() and (out <= 1).all()):
            return failed(f"{call} ends in a sigmoid/softmax: return raw scores (logits); "
                          "CrossEntropyLoss and BCEWithLogitsLoss apply it themselves")
        if shape[1] > 1 and bool((out <= 0).all()) and bool(
                (out.logsumexp(dim=1).abs() < 1e-3).all()):
            return failed(f"{call} ends in a log_softmax: return raw scores (logits); "
                          "CrossEntropyLoss applies it itself")
        if bool((out >= 0).all()):
            return failed(f"{call} never gives a negative score (a ReLU at the end?): logits "
                          "must be free to go below 0 for the loss to push a class down")
        if float((out - out[:1]).abs().max()) < 1e-6:
            return failed(f"{call} gives the same scores whatever the input")
        if trained is None or tuple(trained.shape) != shape or not bool(trained.abs().sum() > 0):
            return failed(f"{call} gives zeros in train mode (a Dropout(p=1) at the end?): "
                          "nothing could be learnt")
        if not flows:
            return failed(f"{call}: no gradient reaches the head's parameters in train mode, "
                          "so training would not change them")
    return passed("one score per class for cross-entropy, one logit for BCE, all trainable")


def check_optimizer(optimizer: Optimizer, model: Module) -> Verdict:
    """``optimizer`` holds exactly ``model``'s trainable parameters (notebook 06).

    Flags: frozen parameters given to the optimizer, trainable ones (the head's)
    missing, parameters of another module.
    """
    import torch

    if not isinstance(optimizer, torch.optim.Optimizer):
        return failed(f"expected a torch.optim optimizer, got {_what(optimizer)}")
    if not isinstance(model, torch.nn.Module):
        return failed(f"expected the model (an nn.Module), got {_what(model)}")
    given = [p for group in optimizer.param_groups for p in group["params"]]
    names = {id(p): name for name, p in model.named_parameters()}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return failed("the model has no trainable parameter: attach the new head first")
    foreign = [p for p in given if id(p) not in names]
    if foreign:
        return failed(f"the optimizer holds {len(foreign)} parameter tensor(s) that are not this "
                      "model's (a head made separately, or another copy of the network?)")
    frozen = [names[id(p)] for p in given if not p.requires_grad]
    if frozen:
        return failed(f"the optimizer was given {len(frozen)} frozen parameter tensor(s) "
                      f"(requires_grad=False, e.g. {frozen[0]}): give it only the trainable ones")
    ids = {id(p) for p in given}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in ids]
    if missing:
        return failed(f"{len(missing)} trainable parameter tensor(s) are missing from the "
                      f"optimizer (e.g. {missing[0]}): they would never change")
    n = sum(p.numel() for p in given)
    return passed(f"the optimizer updates exactly the trainable parameters ({n:,} numbers)")


def check_bce_loss(loss_fn: Function) -> Verdict:
    """``loss_fn(logits, y)`` is the mean binary cross-entropy of one-logit outputs.

    logits: (N, 1) float, y: (N,) int64 labels 0/1. Compared with
    ``BCEWithLogitsLoss`` on the logits; flags the sigmoid applied twice
    (BCEWithLogitsLoss given probabilities), a summed loss, cross-entropy over one
    output (always 0), int targets, (N, 1) vs (N,) shapes, a result without gradient,
    and sigmoid + BCELoss (right for small logits, wrong for large ones).
    """
    import torch
    import torch.nn.functional as F

    if not callable(loss_fn) or isinstance(loss_fn, type):
        return failed(f"expected the function loss_fn, got {_what(loss_fn)}")
    z = torch.tensor([[2.0], [-1.0], [0.5], [-3.0], [1.5]])
    y = torch.tensor([1, 0, 0, 1, 1])

    def run(logits, labels):
        leaf = logits.clone().requires_grad_(True)
        return _call("loss_fn(logits, y)", loss_fn, leaf, labels.clone())

    try:
        value = run(z, y)
    except Exception as exc:  # noqa: BLE001
        text = str(exc) if not isinstance(exc, _Escaped) else ""
        if "size" in text and ("Target" in text or "same" in text):
            return failed("logits (N, 1) and labels (N,) differ in shape: compare logits[:, 0] "
                          "(or logits.squeeze(1)) with the labels")
        if "out of bounds" in text:
            return failed("cross-entropy over ONE output has no class 1: with one logit use "
                          "binary cross-entropy (BCEWithLogitsLoss)")
        if "Long" in text or "dtype" in text or "cast" in text:
            return failed("binary cross-entropy needs float targets: y.float()")
        return _raised("loss_fn(logits, y)", exc)
    number = _as_float(value)
    if number is None:
        return failed(f"loss_fn returned {_what(value)}: return the loss as a 0-d tensor")
    if not (isinstance(value, torch.Tensor) and value.requires_grad):
        return failed("the loss has no gradient (.item(), or a detached tensor?): return the "
                      "tensor itself, backward() needs it")
    yf = y.float()
    ref = float(F.binary_cross_entropy_with_logits(z[:, 0], yf))
    twice = float(F.binary_cross_entropy_with_logits(torch.sigmoid(z[:, 0]), yf))

    def near(a, b):
        return abs(a - b) <= 1e-4 * max(1.0, abs(b))

    if near(number, twice):
        return failed("sigmoid applied twice: BCEWithLogitsLoss takes the logits and applies the "
                      "sigmoid itself; do not give it torch.sigmoid(logits)")
    if near(number, ref * len(y)):
        return failed("the loss is summed over the batch: use the mean (the default reduction), "
                      "so the learning rate does not depend on the batch size")
    if abs(number) < 1e-7:
        return failed("the loss is 0 whatever the logits: cross-entropy over ONE output is "
                      "always 0; with one logit use binary cross-entropy")
    if not near(number, ref):
        return failed("this is not the binary cross-entropy of these logits")
    big = torch.tensor([[40.0], [-40.0]])
    try:
        extreme = _as_float(run(big, torch.tensor([0, 1])))
    except Exception as exc:  # noqa: BLE001
        return _raised("loss_fn on large logits", exc)
    if extreme is None or not near(extreme, 40.0):
        return failed("right for moderate logits, wrong for large ones (sigmoid then BCELoss "
                      "saturates): give the logits to BCEWithLogitsLoss")
    return passed("binary cross-entropy on the logits, averaged over the batch")


def check_train_step(train_step: Function) -> Verdict:
    """``train_step(model, optimizer, loss_fn, x, y)`` makes one clean optimizer step.

    Runs two steps on a small seeded model with SGD and compares with the textbook
    step (forward, loss, zero_grad, backward, step). Flags: no backward, no step,
    gradients zeroed between backward and step, gradients accumulating across steps
    (no zero_grad), a returned tensor instead of ``loss.item()``, a returned value that
    is not the batch's loss.
    """
    import copy

    import torch
    import torch.nn.functional as F

    if not callable(train_step) or isinstance(train_step, type):
        return failed(f"expected the function train_step, got {_what(train_step)}")
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 5, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])

    def loss_fn(logits, labels):
        # not the notebook's loss (positives weigh double): a train_step that uses the
        # notebook's loss_fn instead of its argument takes another step
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float(),
                                                  pos_weight=torch.tensor(2.0))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        start = torch.nn.Linear(5, 1)

    def plain_bce(logits, labels):
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float())

    def reference(accumulate: bool, loss_of=loss_fn):
        m = copy.deepcopy(start)
        opt = torch.optim.SGD(m.parameters(), lr=0.5)
        states, losses = [], []
        for _ in range(2):
            if not accumulate:
                opt.zero_grad()
            loss = loss_of(m(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            states.append([p.detach().clone() for p in m.parameters()])
        return states, losses

    good, good_losses = reference(accumulate=False)
    accumulated, _ = reference(accumulate=True)
    other_loss, _ = reference(accumulate=False, loss_of=plain_bce)
    model = copy.deepcopy(start)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    returned = []
    for step in range(2):
        try:
            returned.append(_call("train_step(model, optimizer, loss_fn, x, y)", train_step,
                                  model, optimizer, loss_fn, x, y))
        except Exception as exc:  # noqa: BLE001
            return _raised("train_step(model, optimizer, loss_fn, x, y)", exc)
        now = [p.detach() for p in model.parameters()]
        if step == 0:
            if all(torch.equal(a, b) for a, b in zip(now, start.parameters())):
                grads = [p.grad for p in model.parameters()]
                if all(g is None or not g.abs().any() for g in grads):
                    return failed("the parameters did not change and hold no gradient: "
                                  "loss.backward() is missing, or zero_grad() runs between "
                                  "backward() and step()")
                return failed("gradients were computed but the parameters did not change: "
                              "optimizer.step() is missing")
            if not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(now, good[0])):
                if all(torch.allclose(a, b, atol=1e-6) for a, b in zip(now, other_loss[0])):
                    return failed("the step follows another loss than the loss_fn it was given "
                                  "(the notebook's?): use train_step's own arguments")
                return failed("after one call the parameters are not one optimizer step on "
                              "this batch's loss")
        elif not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(now, good[1])):
            if all(torch.allclose(a, b, atol=1e-6) for a, b in zip(now, accumulated[1])):
                return failed("gradients accumulate from one step to the next: call "
                              "optimizer.zero_grad() before loss.backward()")
            return failed("the second step is not a clean optimizer step")
    for value, expected in zip(returned, good_losses):
        if isinstance(value, torch.Tensor):
            return failed("return loss.item() (a Python float), not the loss tensor: the tensor "
                          "keeps the whole graph of the step alive")
        number = _as_float(value)
        if number is None:
            return failed(f"train_step returned {_what(value)}: return the loss (a float)")
        if abs(number - expected) > 1e-5 * max(1.0, abs(expected)):
            return failed("the returned value is not this batch's loss (computed before the update)")
    return passed("forward, loss, zero_grad, backward, step: one clean update per call")


def check_evaluate(evaluate: Function) -> Verdict:
    """``evaluate(model, X, y)`` returns the accuracy in eval mode, without gradients.

    Tried on a head with K = 3 outputs (argmax) and on a one-logit head (class 1 when
    the logit is > 0), both with a dropout that the evaluation must switch off. Flags:
    the model left in train mode, gradients tracked, a count or a percentage instead
    of a fraction, argmax on one logit, a wrong accuracy.
    """
    import torch
    from torch import nn

    if not callable(evaluate) or isinstance(evaluate, type):
        return failed(f"expected the function evaluate, got {_what(evaluate)}")

    class Probe(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.drop = nn.Dropout(0.9)
            self.fc = nn.Linear(4, k)
            self.seen = []

        def forward(self, x):
            self.seen.append((self.training, torch.is_grad_enabled()))
            return self.fc(self.drop(x))

    gen = torch.Generator().manual_seed(60)
    X = torch.randn(20, 4, generator=gen)
    for k in (3, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            model = Probe(k)
        with torch.no_grad():
            logits = model.fc(X)
        pred = logits.argmax(1) if k > 1 else (logits[:, 0] > 0).long()
        # labels: right for the first 12 images, wrong for the last 8 -> accuracy 0.6
        y = pred.clone()
        y[12:] = (pred[12:] + 1) % max(k, 2)
        expected = 12 / 20
        model.train()
        try:
            value = _call("evaluate(model, X, y)", evaluate, model, X.clone(), y.clone())
        except Exception as exc:  # noqa: BLE001
            return _raised(f"evaluate on a {k}-output head", exc)
        if not model.seen:
            return failed("evaluate never ran the model")
        if any(training for training, _ in model.seen):
            return failed("the model was in train mode during the evaluation (dropout on, "
                          "BatchNorm using batch statistics): call model.eval() first")
        if any(grad for _, grad in model.seen):
            return failed("gradients were tracked during the evaluation: run the model under "
                          "torch.no_grad() (faster, less memory)")
        number = _as_float(value)
        if number is None:
            return failed(f"evaluate returned {_what(value)}: return the accuracy (a float)")
        if abs(number - expected) < 1e-6:
            continue
        if abs(number - expected * len(y)) < 1e-6:
            return failed("this is the number of correct predictions: divide by the number of images")
        if abs(number - 100 * expected) < 1e-4:
            return failed("a percentage: return the accuracy as a fraction in [0, 1]")
        if k == 1:
            argmax = float((torch.zeros_like(y) == y).float().mean())
            ones = float((torch.ones_like(y) == y).float().mean())
            if abs(number - argmax) < 1e-6:
                return failed("with ONE logit, argmax always gives class 0: predict class 1 when "
                              "the logit is > 0 (the probability > 0.5)")
            if abs(number - ones) < 1e-6:
                return failed("every image predicted as class 1: a sigmoid is always > 0; "
                              "threshold the logit at 0 (or the probability at 0.5)")
            return failed("wrong accuracy for a one-logit head (class 1 when the logit is > 0)")
        return failed("wrong accuracy for a head with one score per class (argmax)")
    return passed("eval mode, no gradients, right accuracy for K scores and for one logit")


# =============================================================================
# Notebook 05: the layer sweep, PCA + SVM, and the open experiments.
# =============================================================================
# Kinds of the student's answers and of what the notebook supplies.
AccuracyDict = Kind("a dict {layer: test accuracy}", lambda v: isinstance(v, Mapping) and bool(v))
PcaResults = Kind("a dict {n_components: (test accuracy, fit seconds)}",
                  lambda v: isinstance(v, Mapping) and bool(v))
Text = Kind("a sentence (a str)", lambda v: isinstance(v, str) and bool(v.strip()))
Results = Kind("a dict {setting: test accuracy}", lambda v: isinstance(v, Mapping) and bool(v))
Layers = Kind("a list of layer names", lambda v: isinstance(v, (list, tuple)) and bool(v)
              and all(isinstance(x, str) for x in v), context=True)
LayerStr = Kind("a layer name (a str)", lambda v: isinstance(v, str), context=True)


def _accuracy_of(value):
    """A float from a number, a 0-d array or an object with ``.accuracy``; else None."""
    if hasattr(value, "accuracy") and not isinstance(value, (numbers.Number, np.ndarray)):
        value = value.accuracy
    if isinstance(value, (bool, np.bool_)):
        return None
    if hasattr(value, "shape") and tuple(getattr(value, "shape", ())) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _missing_layers(train, test, layers):
    gone = [layer for layer in layers if layer not in train.arrays or layer not in test.arrays]
    if gone:
        return failed(f"layer(s) {', '.join(map(repr, gone))} are not in these features (they hold "
                      f"{', '.join(train.arrays)})")
    return None


def check_layer_sweep(scores: AccuracyDict, train: Split, test: Split, layers: Layers) -> Verdict:
    """Notebook 05: ``{layer: test accuracy}`` of ``LinearSVC(C=1)`` on every layer.

    Args:
        scores: the student's dict, one accuracy (a fraction) per layer of ``layers``;
            an :class:`tplib.svm.SVMResult` per layer is accepted too.
        train, test: the sweep's :class:`tplib.features.Features` (all layers).
        layers: the layers the loop had to cover.

    The reference is :func:`tplib.svm_fit_score` per layer (L2 rows, C=1, fixed seed);
    each accuracy within 1 point (at least 2 test images) passes. Names a missing or
    unknown layer, percentages, one layer's features reused for every layer, an SVM
    fitted on the test split or scored on its own training images, train and test
    swapped, and rows that were not L2-normalised.
    """
    from .svm import fit_and_score, make_svm, svm_fit_score

    if not isinstance(scores, Mapping) or not scores:
        return failed(f"scores should be a dict {{layer: test accuracy}}, got {_what(scores)}")
    bad = _missing_layers(train, test, layers)
    if bad is not None:
        return bad
    keys = list(scores)
    if not all(isinstance(k, str) for k in keys):
        return failed("the keys should be the layer names (the loop's `layer`), e.g. "
                      f"{layers[0]!r}, not {_what(keys[0])}")
    missing = [layer for layer in layers if layer not in scores]
    if missing:
        return failed(f"no accuracy for layer(s) {', '.join(missing)}: the loop must cover every "
                      "layer in LAYERS")
    extra = [k for k in keys if k not in layers]
    if extra:
        return failed(f"unknown layer name(s) {', '.join(map(repr, extra))}: use the names in LAYERS")
    values = {}
    for layer in layers:
        v = _accuracy_of(scores[layer])
        if v is None or not math.isfinite(v):
            return failed(f"the accuracy of {layer!r} should be a number (e.g. svm.score(X_test, "
                          f"y_test)), got {_what(scores[layer])}")
        values[layer] = v
    if any(1.0 < v <= 100.0 for v in values.values()):
        return failed("accuracies as percentages: give fractions between 0 and 1 (svm.score gives one)")
    if any(not 0.0 <= v <= 1.0 for v in values.values()):
        return failed("every accuracy must lie between 0 and 1")
    got = np.array([values[layer] for layer in layers])
    ytr, yte = train.labels, test.labels
    tol = max(0.01, 2.0 / len(yte))
    ref = np.array([svm_fit_score(train[la], ytr, test[la], yte, C=1).accuracy for la in layers])
    if np.all(np.abs(got - ref) <= tol):
        return passed(f"the test accuracy of all {len(layers)} layers as expected (L2 rows, "
                      "LinearSVC(C=1) fitted on the training split, scored on the test split)")

    def variant(fit, score, l2=True):
        acc = []
        for la in layers:
            data = {"train": (train[la], ytr), "test": (test[la], yte)}
            (Xf, yf), (Xs, ys) = data[fit], data[score]
            if l2:
                Xf, Xs = l2_normalize(Xf), l2_normalize(Xs)
            acc.append(fit_and_score(make_svm(1.0), Xf, yf, Xs, ys).accuracy)
        return np.array(acc)

    suspects = [
        (lambda: variant("train", "train"), "the SVM was scored on the images it was fitted on: "
         "fit on the training rows, score on the test rows"),
        (lambda: variant("test", "train"), "train and test swapped: fit on sweep_train's rows and "
         "y_train, score on sweep_test's rows and y_test"),
        (lambda: variant("test", "test"), "the SVM was fitted on the test split: fit on the "
         "training rows (sweep_train[layer], y_train)"),
        (lambda: variant("train", "test", l2=False), "this is what rows without L2 normalisation "
         "give: normalise each layer's rows (tplib.l2_normalize) before the SVM"),
    ]
    computed = [(fn(), hint) for fn, hint in suspects]
    for acc, hint in computed:
        if np.all(np.abs(got - acc) <= 1e-9):
            return failed(hint)
    if len(layers) > 1 and np.ptp(got) < 1e-12 and np.ptp(ref) > tol:
        return failed("every layer has the same accuracy: the loop reuses one layer's features; "
                      "read the loop's own layer, sweep_train[layer] and sweep_test[layer]")
    for acc, hint in computed:
        if np.all(np.abs(got - acc) <= tol):
            return failed(hint)
    wrong = [la for la, g, r in zip(layers, got, ref) if abs(g - r) > tol]
    return failed(f"the accuracy of {', '.join(wrong)} is more than {100 * tol:.1f} points away "
                  "from what these features give with L2 rows and LinearSVC(C=1) fitted on the "
                  "training split")


def _pca_reference(n, Xtr, ytr, Xte, yte, fit_on):
    """Test accuracy of L2 -> PCA(n) -> LinearSVC(C=1) with PCA fitted on ``fit_on``:
    "train" (the lab's), "both" (train + test), "test", or "no_l2" (train, raw rows)."""
    from sklearn.decomposition import PCA

    from .svm import fit_and_score, make_svm

    ntr, nte = l2_normalize(Xtr), l2_normalize(Xte)
    if fit_on == "no_l2":
        pca = PCA(n, random_state=RANDOM_STATE).fit(Xtr)
        return fit_and_score(make_svm(1.0), pca.transform(Xtr), ytr, pca.transform(Xte), yte).accuracy
    rows = {"train": ntr, "test": nte, "both": np.vstack([ntr, nte])}[fit_on]
    pca = PCA(n, random_state=RANDOM_STATE).fit(rows)
    return fit_and_score(make_svm(1.0), pca.transform(ntr), ytr, pca.transform(nte), yte).accuracy


def _pca_probe(seed: int = 0, per_class: int = 20, d: int = 24):
    """Generated rows on which each usual PCA mistake gives a very different accuracy.

    3 classes, 20 + 20 rows of 24 values: a large common offset, the classes on a
    circle in two dimensions, every row scaled by a random length (so only L2 rows show
    the classes to a 2-component PCA), and noise of large variance along one direction
    in the test rows only (so a PCA fitted on them keeps the noise). With 2 components:
    about 0.98 when PCA is fitted on the L2 training rows, 0.3 on train + test or on
    test, 0.5 without L2. Returns (X_train, y_train, X_test, y_test), float32 / int64.
    """
    rng = np.random.RandomState(seed)
    angle = 2 * np.pi * np.arange(3) / 3
    means = np.zeros((3, d))
    means[:, 1], means[:, 2] = 2 * np.cos(angle), 2 * np.sin(angle)

    def rows(noisy):
        y = np.repeat(np.arange(3), per_class)
        X = 10 * np.eye(d)[0] + means[y] + 0.3 * rng.standard_normal((len(y), d))
        if noisy:
            X[:, 5] += 30.0 * rng.standard_normal(len(y))
        X *= rng.lognormal(0.0, 1.0, size=(len(y), 1))
        return X.astype(np.float32), y.astype(np.int64)

    return (*rows(False), *rows(True))


def _run_pca_answer(fn, n, Xtr, ytr, Xte, yte):
    """(accuracy, seconds, wall seconds) from the student's function, or a Verdict."""
    t0 = time.perf_counter()
    try:
        out = _call(f"pca_svm_score({n}, X_train, y_train, X_test, y_test)", fn, n,
                    Xtr.copy(), ytr.copy(), Xte.copy(), yte.copy())
    except Exception as exc:  # noqa: BLE001 - the student's error, told in one line
        return _raised(f"pca_svm_score({n}, ...)", exc)
    wall = time.perf_counter() - t0
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return failed(f"pca_svm_score should return (test accuracy, fit seconds), got {_what(out)}")
    acc, seconds = _accuracy_of(out[0]), _accuracy_of(out[1])
    if acc is None or not math.isfinite(acc):
        return failed(f"the accuracy returned should be a number, got {_what(out[0])}")
    if 1.0 < acc <= 100.0:
        return failed("the accuracy is a percentage: return a fraction between 0 and 1 "
                      "(model.score gives one)")
    if not 0.0 <= acc <= 1.0:
        return failed("the accuracy must lie between 0 and 1")
    if seconds is None or not math.isfinite(seconds):
        return failed(f"the fit time returned should be a number of seconds, got {_what(out[1])}")
    return acc, seconds, wall


def check_pca_svm(pca_svm_score: Function, results: PcaResults, train: Split, test: Split,
                  layer: LayerStr) -> Verdict:
    """Notebook 05: PCA then ``LinearSVC(C=1)``, fitted on the training rows, timed.

    Args:
        pca_svm_score: the student's function ``(n_components, X_train, y_train, X_test,
            y_test) -> (test accuracy, fit seconds)``. The check runs it (time-bounded)
            on generated rows where each usual mistake gives a very different accuracy
            (:func:`_pca_probe`), then on the real features with 16 components, and
            compares with the lab's reference, :func:`tplib.pca_svm` (L2 rows, PCA,
            the SVM; within 1 point, at least 2 test images, on the real features).
        results: the student's ``{n_components: (accuracy, seconds)}``.
        train, test: :class:`tplib.features.Features`; layer: the layer read.

    Names: PCA fitted on train + test (a leak), PCA fitted on the test split, no L2
    normalisation before PCA, more components than training images, a fit time that
    measures nothing (0.0 s) or is a clock reading, percentages, the wrong return shape.
    """
    if not isinstance(results, Mapping) or not results:
        return failed(f"results should be a dict {{n_components: (accuracy, seconds)}}, got "
                      f"{_what(results)}")
    if layer not in train.arrays or layer not in test.arrays:
        return failed(f"layer {layer!r} is not in these features (they hold {', '.join(train.arrays)})")
    Xtr, ytr, Xte, yte = train[layer], train.labels, test[layer], test.labels
    n_max = min(Xtr.shape)
    for n, value in results.items():
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            return failed(f"the keys of results should be numbers of components (ints), got {_what(n)}")
        if n > n_max:
            return failed(f"{n} components from {Xtr.shape[0]} training images of {Xtr.shape[1]} "
                          f"values: PCA has at most {n_max}; a PCA that gave {n} was fitted on "
                          "more rows than the training split (train + test?)")
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return failed(f"results[{n}] should be (test accuracy, fit seconds), got {_what(value)}")
        seconds = _accuracy_of(value[1])
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return failed(f"the fit time of results[{n}] should be a number of seconds, got "
                          f"{_what(value[1])}")
        if seconds < 1e-4:
            return failed(f"the fit time for {n} components reads {seconds:.1f} s: the clock was "
                          "read around nothing; start it just before fit and read it just after")
    probe = _pca_probe()
    out = _run_pca_answer(pca_svm_score, 2, *probe)
    if isinstance(out, Verdict):
        return out
    acc = out[0]
    refs = {k: _pca_reference(2, *probe, k) for k in ("train", "both", "test", "no_l2")}
    if abs(acc - refs["train"]) > 0.05:
        hints = {"both": "PCA was fitted on the training AND test rows: the test images leaked "
                         "into the model; fit the whole pipeline on X_train only",
                 "test": "PCA was fitted on the test rows: fit it (the whole pipeline) on X_train, "
                         "then only transform X_test",
                 "no_l2": "this is what PCA without L2 normalisation gives: the lab normalises "
                          "each row first (Normalizer() as the pipeline's first step)"}
        nearest = min(hints, key=lambda k: abs(acc - refs[k]))
        if abs(acc - refs[nearest]) <= 0.05:
            return failed(hints[nearest])
        return failed("on generated rows this pipeline does not behave like L2 rows -> "
                      "PCA(n_components) -> LinearSVC(C=1) fitted on X_train only")
    n = min(16, n_max)
    out = _run_pca_answer(pca_svm_score, n, Xtr, ytr, Xte, yte)
    if isinstance(out, Verdict):
        return out
    acc, seconds, wall = out
    if seconds > wall + 1.0:
        return failed(f"the fit time returned ({seconds:.3g}) is longer than the whole call: "
                      "return a duration, the clock after fit minus the clock before it")
    if seconds < max(1e-4, 0.02 * wall):
        return failed(f"the fit time returned ({seconds:.4f} s) covers almost nothing of the "
                      "call: start the clock just before fit and read it just after")
    tol = max(0.01, 2.0 / len(yte))
    if abs(acc - _pca_reference(n, Xtr, ytr, Xte, yte, "train")) > tol:
        return failed(f"with {n} components the test accuracy is more than {100 * tol:.1f} "
                      "points away from L2 rows -> PCA -> LinearSVC(C=1) fitted on X_train, "
                      "y_train and scored on X_test, y_test")
    return passed("PCA + LinearSVC fitted on the L2 training rows only, test accuracy as "
                  "expected, fit timed")


_PLACEHOLDERS = ("your hypothesis", "your answer", "todo", "...", "write it", "xxx")


def check_experiment(hypothesis: Text, results: Results) -> Verdict:
    """Notebook 05's open experiments: a hypothesis written down, and a comparison run.

    Args:
        hypothesis: one or two sentences written before running: what you expect and
            why (a str of at least 8 words, not the template's placeholder).
        results: ``{setting: test accuracy}`` with the baseline and at least one change
            (fractions between 0 and 1).

    It cannot judge the experiment itself; it checks that it is recorded so that its
    conclusion can be compared with the hypothesis.
    """
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        return failed(f"write the hypothesis first, as a sentence in `hypothesis` (got "
                      f"{_what(hypothesis)}): what you expect, and why")
    if not isinstance(results, Mapping) or not results:
        return failed(f"results should be a dict {{setting: test accuracy}}, got {_what(results)}")
    text = " ".join(hypothesis.lower().split())
    if any(text.startswith(p) or text == p for p in _PLACEHOLDERS) or len(text.split()) < 8:
        return failed("the hypothesis should say what you expect and why, in a sentence (at "
                      "least 8 words), written before you run the experiment")
    if len(results) < 2:
        return failed("results should hold at least two settings: the baseline and your change, "
                      "measured the same way")
    for name, value in results.items():
        v = _accuracy_of(value)
        if v is None or not math.isfinite(v):
            return failed(f"results[{name!r}] should be a test accuracy (a number), got {_what(value)}")
        if 1.0 < v <= 100.0:
            return failed(f"results[{name!r}] is a percentage: give fractions between 0 and 1")
        if not 0.0 <= v <= 1.0:
            return failed(f"results[{name!r}] must lie between 0 and 1")
    return passed(f"hypothesis written; {len(results)} settings measured: now compare the result "
                  "with what you expected")


# ============================================================ every public check is guarded
def _guard_public_checks(namespace: dict) -> tuple[str, ...]:
    """Wrap every public ``check_*`` / ``expect_*`` function of this module with
    :func:`_guard` (a new check cannot forget it); returns their names, sorted."""
    names = []
    for name, obj in list(namespace.items()):
        if (name.startswith(("check_", "expect_")) and inspect.isfunction(obj)
                and obj.__module__ == __name__ and not hasattr(obj, "__wrapped__")):
            namespace[name] = _guard(obj)
            names.append(name)
    return tuple(sorted(names))


#: The names of the public checks (each wrapped by :func:`_guard`).
CHECKS = _guard_public_checks(globals())
