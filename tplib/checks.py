"""Self-checks for the lab's exercises: one friendly line, never the answer.

After each exercise a notebook calls one of these with the student's result; the
returned :class:`Verdict` shows as one line (``✔ ...`` or ``✘ ...``) that says whether
the result is right and, when it is not, which usual mistake it looks like, without
giving the expected values away. Each check compares with a reference computed by
tplib itself (the weights' own transforms, the library's extractor, scikit-learn), and
``tests/test_checks.py`` feeds every check the usual wrong answers.

Checks never raise on a wrong answer (a wrong type or shape is a verdict too), so a
student can run the check cell as often as they like.
"""
from __future__ import annotations

from dataclasses import dataclass

OK_MARK, NO_MARK = "✔", "✘"


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
    return Verdict(False, message)


def _never_raises(check):
    """Decorator: a check that hits an unexpected error says so in a verdict, never raises."""
    import functools

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except Exception as exc:  # a check cell must always print one line
            return failed(f"could not check this answer ({type(exc).__name__}: {exc})")

    return wrapper


def _as_int(value, allow_float: bool = True):
    """An int from an int-like answer (int, numpy integer, 0-d tensor; an integral float
    when ``allow_float``), else None."""
    import numbers

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


@_never_raises
def check_fc_estimate(value) -> Verdict:
    """Notebook 01: the number of weights in VGG16's fc6, fc7 and fc8 (biases left out).

    Recognises: biases included, one layer forgotten, fc6's input size mistyped (e.g.
    4096 x 4096, or 512 without the 7 x 7), the whole network's count, millions.
    """
    weights = [i * o for i, o in VGG16_FC]
    biases = [o for _, o in VGG16_FC]
    right = sum(weights)
    n = _as_int(value)
    if n is None:
        if isinstance(value, float) and 50 < value < 500:
            return failed("give the exact count as a whole number, not millions")
        return failed(f"give a whole number (an int), not {type(value).__name__}")
    if n == right:
        return passed("right: fc6, fc7 and fc8 hold that many weights (in_features x out_features each)")
    if n == right + sum(biases):
        return failed("that count includes the biases; the estimate asked for counts the weights only")
    if n == VGG16_TOTAL:
        return failed("that is the whole network's count; the estimate is for the three fc layers only")
    if 100 <= n <= 200:
        return failed("give the exact count as a whole number, not millions")
    for with_bias in (0, 1):
        for skip in range(3):
            kept = [k for k in range(3) if k != skip]
            if n == sum(weights[k] + with_bias * biases[k] for k in kept):
                return failed("one fully connected layer is missing: add up fc6, fc7 and fc8")
    for with_bias in (0, 1):
        # fc6's input typed wrong: everything else right, fc6 = (something) x 4096
        rest = n - (weights[1] + weights[2]) - with_bias * sum(biases)
        if rest > 0 and rest % 4096 == 0 and rest // 4096 != VGG16_FC[0][0]:
            return failed("fc6 looks wrong: its input is pool5's output flattened "
                          "(channels x height x width of pool5's maps)")
    return failed("not the fc layers' weight count: each layer has in_features x out_features weights; "
                  "add up the three")


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
    if arr.dtype == object or arr.ndim == 0:
        return None
    return torch.from_numpy(np.ascontiguousarray(arr))


@_never_raises
def check_preprocess(x, backbone, image) -> Verdict:
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
        return failed(f"expected a torch tensor of shape (3, {size}, {size}), got {type(x).__name__}")
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
    if not t.is_floating_point():
        return failed("integer values: convert to float and scale to [0, 1] (divide by 255)")
    t = t.float()
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
        return passed("identical to the network's own preprocessing")
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


@_never_raises
def check_topk(top_k, backbone, x, k: int = 5) -> Verdict:
    """Notebook 02: the student's ``top_k(model, x, categories, k)`` against the reference.

    ``x`` is one preprocessed image (3, S, S). The function is called with the model in
    train mode (the model's mode and BatchNorm statistics are restored afterwards), so
    it must switch to eval mode itself. Recognises: not written yet, an error inside,
    the model left in train mode, logits instead of probabilities, softmax over the
    wrong dimension, not best first, indices instead of names, k ignored.
    """
    import torch

    from .models import train_mode

    if not callable(top_k):
        return failed("pass your function itself: check_topk(top_k, backbone, x)")
    model, categories = backbone.model, backbone.categories
    x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    with torch.no_grad(), train_mode(model):
        model.eval()
        probs = model(x.unsqueeze(0))[0].softmax(dim=0)
    ref_p, ref_i = probs.topk(k)
    ref = [(categories[i], float(p)) for p, i in zip(ref_p.tolist(), ref_i.tolist())]

    def call(kk):
        with train_mode(model):  # the student's function gets a model in train mode
            out = top_k(model, x.clone(), categories, kk)
            return out, model.training

    try:
        result, still_training = call(k)
    except NotImplementedError:
        return failed("your function is not written yet (it raises NotImplementedError)")
    except Exception as exc:
        return failed(f"your function raised {type(exc).__name__}: {exc}")
    pairs, problem = _topk_pairs(result)
    if pairs is None:
        return failed(problem)
    if len(pairs) != k:
        return failed(f"asked for k={k}, got {len(pairs)} pairs")
    if still_training:
        return failed("the model is still in train mode after your function: call model.eval() first")
    ps = [p for _, p in pairs]
    if any(p > 1 + 1e-5 or p < -1e-5 for p in ps):
        return failed("these look like logits (raw scores), not probabilities: apply softmax")
    if all(abs(p - 1) < 1e-5 for p in ps):
        return failed("every probability is 1: softmax over the wrong dimension "
                      "(the 1000 classes are the last dimension)")
    if any(a < b - 1e-7 for a, b in zip(ps, ps[1:])):
        return failed("not best first: sort by decreasing probability (torch.topk does)")
    if [n for n, _ in pairs] != [n for n, _ in ref] or any(abs(p - q) > 1e-3 for p, (_, q) in zip(ps, ref)):
        if sum(ps) > 1 + 1e-3:
            return failed("probabilities that sum to more than 1: softmax over the 1000 classes")
        return failed("not the classes and probabilities of the network in eval mode: "
                      "eval mode, forward pass, softmax over the classes, then the k largest")
    try:
        small, _ = call(3)
    except Exception as exc:
        return failed(f"your function raised {type(exc).__name__} with k=3: {exc}")
    if not isinstance(small, (list, tuple)) or len(small) != 3:
        return failed("your function ignores k: with k=3 it should return 3 pairs")
    return passed("right: eval mode, softmax probabilities, the k most likely classes, best first")


@_never_raises
def check_strongest_channel(channel, maps) -> Verdict:
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
        if isinstance(channel, float) or (hasattr(channel, "shape") and tuple(channel.shape) == ()):
            return failed("give the channel's index (an int), not its activation value")
        return failed(f"give the channel's index as an int, not {type(channel).__name__}")
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
