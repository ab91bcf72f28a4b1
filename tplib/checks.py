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

from .errors import OptionError
from .registry import get_spec

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


# ======================================================== notebooks 04 and 05
# 04: the lab's VGG16relu7 class, L2-normalised feature rows, LinearSVC accuracy.
# 05: C chosen by cross-validation on the training split, a trained head's accuracy.

def _layer_of(feats, layer):
    """The layer to read from a :class:`tplib.features.Features` (its only one by default)."""
    if layer is not None:
        return layer
    if len(feats.arrays) != 1:
        raise OptionError(f"these features hold several layers ({', '.join(feats.arrays)}): "
                         "pass layer=...")
    return next(iter(feats.arrays))


def _reference_relu(vgg, x):
    """relu6 and relu7 of torchvision's VGG16 ``vgg`` on ``x`` (its feature extractor)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    spec = get_spec("vgg16")
    extractor = create_feature_extractor(vgg, {spec.node("relu6"): "relu6", spec.node("relu7"): "relu7"})
    out = extractor(x)
    return out["relu6"], out["relu7"]


#: relu6 and relu7 of the seeded VGG16 on the check's seeded batch (2 x 4096 each).
_VGG_REFERENCE: dict = {}


def _vgg16_for_check():
    """A fresh VGG16 with seeded random weights, in eval mode (built once, then kept)."""
    from .models import build_model

    return build_model("vgg16")


def _leaf_modules(model):
    return [m for m in model.modules() if not list(m.children())]


def check_vgg16relu7(cls) -> Verdict:
    """Notebook 04: the student's ``VGG16relu7`` class against torchvision's relu7.

    Builds VGG16's architecture with seeded random weights (no download: comparing two
    implementations needs no pretrained weights), makes ``cls(vgg16)`` and compares its
    output on a fixed random (2, 3, 224, 224) batch with relu7 (``classifier.4``) read
    by torchvision's feature extractor (the same as :class:`tplib.VGG16relu7`).
    Usual mistakes named: flatten forgotten, classifier not cut (1000 outputs), cut one
    layer too early (fc7 before its ReLU, or relu6) or too late (the dropout after
    relu7 kept), features not copied, a new VGG16 built instead of using the given one.
    """
    import torch

    if not isinstance(cls, type):
        return failed("pass the class itself (VGG16relu7), not an instance or its output")
    vgg = _vgg16_for_check()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    if "relu7" not in _VGG_REFERENCE:  # the same seeded weights and batch every time
        with torch.no_grad():
            _VGG_REFERENCE["relu6"], _VGG_REFERENCE["relu7"] = _reference_relu(vgg, x)
    relu6, relu7 = _VGG_REFERENCE["relu6"], _VGG_REFERENCE["relu7"]
    try:
        model = cls(vgg)
    except NotImplementedError:
        return failed("__init__ is not written yet (it still raises NotImplementedError)")
    except Exception as exc:  # any error is a verdict, not a crash
        return failed(f"VGG16relu7(vgg16) raised {type(exc).__name__}: {exc}")
    if not isinstance(model, torch.nn.Module):
        return failed("VGG16relu7 must subclass torch.nn.Module")
    model.eval()
    with torch.no_grad():
        try:
            out = model(x)
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
            return failed(f"forward raised RuntimeError: {text.splitlines()[0]}")
        except Exception as exc:  # a verdict, never a crash
            return failed(f"forward raised {type(exc).__name__}: {exc}")
    if not isinstance(out, torch.Tensor):
        return failed(f"forward must return a tensor, not {type(out).__name__}")
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
    if (out < 0).any():
        return failed("negative values: the output is fc7 before its ReLU; cut one layer "
                      "later (keep relu7)")
    if torch.allclose(out, relu7, rtol=1e-4, atol=1e-5):
        leaves = _leaf_modules(model)
        if leaves and isinstance(leaves[-1], torch.nn.Dropout):
            return failed("the right values in eval mode, but the class ends with the Dropout "
                          "after relu7 (in train mode it would zero half the features): cut it too")
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


def _as_matrix(X, name):
    import numpy as np

    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return None, failed(f"{name} should be a NumPy array (n_images, n_features), not "
                            f"{type(X).__name__}")
    if arr.ndim != 2:
        return None, failed(f"{name} should be a matrix (n_images, n_features); its shape is "
                            f"{arr.shape}")
    return arr, None


def _check_rows(X, name, raw, other_raw):
    """Verdict for one normalised matrix ``X`` against the raw rows ``raw`` (n, d)."""
    import numpy as np

    from .svm import l2_normalize

    arr, bad = _as_matrix(X, name)
    if bad is not None:
        return bad
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
    if not np.allclose(norms, 1.0, atol=1e-3):
        col_norms = np.linalg.norm(arr, axis=0)
        used = col_norms > 1e-6
        if used.any() and np.allclose(col_norms[used], 1.0, atol=1e-3):
            return failed(f"{name}: the columns have unit length, not the rows: normalise along "
                          "axis=1 (each image's row)")
        if np.allclose(arr, raw, rtol=1e-4, atol=1e-6):
            return failed(f"{name} is not normalised yet: divide each row by its L2 norm")
        return failed(f"{name}: the rows do not all have unit L2 norm (axis=1, keepdims=True)")
    ref = l2_normalize(raw).astype(np.float64)
    if np.allclose(arr, ref, atol=1e-4):
        return None
    if other_raw is not None and other_raw.shape == raw.shape and np.allclose(
            arr, l2_normalize(other_raw), atol=1e-4):
        return failed(f"{name} holds the other split's features: train goes with train, test "
                      "with test")
    cos = ref @ arr.T
    if np.allclose(cos.max(axis=0), 1.0, atol=1e-4):
        return failed(f"{name} has the right rows in another order: keep the order of the "
                      "labels (do not sort or shuffle)")
    return failed(f"{name} has unit rows, but they are not the normalised features of this "
                  "split and layer")


def check_l2_features(X_train, X_test, train, test, layer: str | None = None) -> Verdict:
    """Notebook 04: one L2-normalised row per image, in the order of the labels.

    Args:
        X_train, X_test: the student's matrices.
        train, test: the :class:`tplib.features.Features` they were made from.
        layer: the layer read (default: the features' only layer).

    Flags: not normalised, columns normalised instead of rows, zero or NaN rows, wrong
    shape (transposed, wrong number of rows), rows reordered, splits swapped.
    """
    import numpy as np

    try:
        layer = _layer_of(train, layer)
        raw_train = np.asarray(train[layer], dtype=np.float64)
        raw_test = np.asarray(test[layer], dtype=np.float64)
    except Exception as exc:  # a verdict, never a crash
        return failed(f"cannot read the reference features: {exc}")
    for name, X, raw, other in (("X_train", X_train, raw_train, raw_test),
                                ("X_test", X_test, raw_test, raw_train)):
        verdict = _check_rows(X, name, raw, other)
        if verdict is not None:
            return verdict
    return passed(f"X_train {raw_train.shape[0]} x {raw_train.shape[1]} and X_test "
                  f"{raw_test.shape[0]} x {raw_test.shape[1]}: one unit-length row per image, "
                  "in label order")


def _as_accuracy(value, what="accuracy"):
    import numbers

    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        return None, failed(f"{what} should be a number (e.g. svm.score(X_test, y_test)), not "
                            f"{type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        return None, failed(f"{what} is {value}")
    if 1.0 < value <= 100.0:
        return None, failed(f"{what} should be a fraction between 0 and 1, not a percentage")
    if not 0.0 <= value <= 1.0:
        return None, failed(f"{what} must lie between 0 and 1")
    return value, None


def check_svm_accuracy(accuracy, train, test, layer: str | None = None, C: float = 1.0) -> Verdict:
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
    try:
        layer = _layer_of(train, layer)
        Xtr, ytr, Xte, yte = train[layer], train.labels, test[layer], test.labels
        ref = svm_fit_score(Xtr, ytr, Xte, yte, C=C).accuracy
    except Exception as exc:  # a verdict, never a crash
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


def check_c_search(best_C, scores, train, test, layer: str | None = None, folds: int = 5) -> Verdict:
    """Notebook 05: C chosen by cross-validation on the training split only.

    Args:
        best_C: the student's chosen C; scores: their {C: accuracy} dict.
        train, test: the :class:`tplib.features.Features` used; layer: the layer read.
        folds: the number of folds of the reference search.

    The scores are compared with the reference cross-validation
    (:func:`tplib.search_C`) and with the test accuracy of each C: scores equal to (or
    nearer to) the test accuracies mean C was tuned on the test split. Own folds
    (another split of the training images) pass when they stay within 5 points.
    """
    import numpy as np

    from .svm import fit_and_score, l2_normalize, make_svm, search_C, svm_fit_score

    if not isinstance(scores, dict) or not scores:
        return failed("scores should be a dict {C: mean cross-validation accuracy}")
    try:
        Cs = [float(c) for c in scores]
        values = np.array([float(scores[c]) for c in scores])
    except (TypeError, ValueError):
        return failed("scores should map each C (a number) to an accuracy (a number)")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        return failed("every score should be an accuracy between 0 and 1")
    if len(Cs) < 2:
        return failed("try several values of C (e.g. 0.01 to 100), not one")
    try:
        best = float(best_C)
    except (TypeError, ValueError):
        return failed(f"best_C should be a number, not {type(best_C).__name__}")
    if not any(np.isclose(best, c) for c in Cs):
        return failed("best_C should be one of the values tried")
    best_score = values[[np.isclose(best, c) for c in Cs].index(True)]
    if best_score < values.max() - 1e-12:
        return failed("best_C is not the C with the highest score")
    try:
        layer = _layer_of(train, layer)
        Xtr, ytr, Xte, yte = train[layer], train.labels, test[layer], test.labels
        cv = np.array(list(search_C(Xtr, ytr, Cs, folds=folds).scores.values()))
        on_test = np.array([svm_fit_score(Xtr, ytr, Xte, yte, C=c).accuracy for c in Cs])
        ntr = l2_normalize(Xtr)
        on_train = np.array([fit_and_score(make_svm(c), ntr, ytr, ntr, ytr).accuracy for c in Cs])
    except Exception as exc:  # a verdict, never a crash
        return failed(f"cannot compute the reference: {exc}")
    d_test, d_cv, d_train = (np.abs(values - ref).mean() for ref in (on_test, cv, on_train))
    if d_cv > 1e-9 and d_test < d_cv and d_test <= d_train and d_test <= 0.05:
        return failed("these scores are test accuracies: C was tuned on the test split. Score "
                      "each C by cross-validation on the training split only")
    if d_cv > 1e-9 and d_train < d_cv and d_train <= 0.05:
        return failed("these are training accuracies: each SVM was scored on the images it was "
                      "fitted on; score it on held-out folds of the training split")
    if d_cv <= 0.05:
        return passed(f"C chosen by {folds}-fold cross-validation on the training split only")
    return failed("these scores are far from a cross-validation on the training split: fit on "
                  "k-1 folds, score on the held-out fold, average over the folds")


def check_head_accuracy(head_accuracy, svm_accuracy, *, below: float = 0.06,
                        above: float = 0.06) -> Verdict:
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
def _raised(what: str, exc: BaseException) -> Verdict:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return failed(f"{what} raised {type(exc).__name__}{': ' + text if text else ''}")


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


@_never_raises
def expect_between(value, low: float, high: float, what: str) -> Verdict:
    """A stable line for a number that training makes machine-dependent (notebook 06).

    ``✔ <what> within the expected range`` when ``low <= value <= high``, else
    ``✘`` with the range; the value itself is not printed (it is printed, unchecked, in
    the cell before), so the line is the same on every machine.
    """
    number = _as_float(value)
    if number is None:
        return failed(f"{what}: expected a number, got {type(value).__name__}")
    if low <= number <= high:
        return passed(f"{what} within the expected range [{low:g}, {high:g}]")
    return failed(f"{what} outside the expected range [{low:g}, {high:g}]: look for a bug")


@_never_raises
def check_frozen(model) -> Verdict:
    """Every parameter of ``model`` has ``requires_grad=False`` (notebook 06, freezing).

    Flags: nothing frozen, ``model.requires_grad = False`` (a plain attribute),
    ``model.eval()`` taken for freezing, some parameters left trainable.
    """
    from torch import nn

    if not isinstance(model, nn.Module):
        return failed(f"expected the network (an nn.Module), got {type(model).__name__}")
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


def _head_output(head, in_features: int):
    """The shape of ``head``'s output on a (3, in_features) batch, or an error text."""
    import torch

    try:
        with torch.no_grad():
            out = head.eval()(torch.zeros(3, in_features))
    except Exception as exc:  # noqa: BLE001 - any error is the student's to see
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not isinstance(out, torch.Tensor):
        return None, f"it returns {type(out).__name__}, not a tensor"
    return tuple(out.shape), None


@_never_raises
def check_new_head(new_head) -> Verdict:
    """``new_head(in_features, n_classes, loss="ce")`` returns the right trainable layer.

    Expected: one score per class for cross-entropy ("ce"), one logit for binary
    cross-entropy ("bce"), taking ``in_features`` inputs, every parameter trainable,
    no sigmoid/softmax at the end (the losses take logits). Tried on
    (4096, 2), (4096, 15), (1280, 2) and (1280, 2, "bce").
    """
    from torch import nn

    if not callable(new_head):
        return failed(f"expected the function new_head, got {type(new_head).__name__}")
    for in_features, n_classes, loss in ((4096, 2, "ce"), (4096, 15, "ce"), (1280, 2, "ce"),
                                         (1280, 2, "bce")):
        call = f"new_head({in_features}, {n_classes}, loss={loss!r})"
        try:
            head = new_head(in_features, n_classes, loss=loss)
        except Exception as exc:  # noqa: BLE001
            return _raised(call, exc)
        if not isinstance(head, nn.Module):
            return failed(f"{call} returned {type(head).__name__}, not a layer (nn.Module)")
        params = list(head.parameters())
        if not params:
            return failed(f"{call} has no parameters to train")
        if any(isinstance(m, (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)) for m in head.modules()):
            return failed(f"{call} ends in a sigmoid/softmax: return raw scores (logits); "
                          "CrossEntropyLoss and BCEWithLogitsLoss apply it themselves")
        shape, error = _head_output(head, in_features)
        if error:
            return failed(f"{call} does not take {in_features} input features ({error})")
        outputs = shape[1] if len(shape) == 2 else None
        expected = 1 if loss == "bce" else n_classes
        if len(shape) != 2 or shape[0] != 3:
            return failed(f"{call} gives outputs of shape {shape}: one row of scores per image expected")
        if outputs != expected:
            if outputs == 1000:
                return failed(f"{call} still gives 1000 scores, ImageNet's classes: the new "
                              "layer must fit the new task")
            if loss == "bce":
                return failed(f"{call} gives {outputs} outputs: with binary cross-entropy the "
                              "head gives ONE logit (the score of class 1)")
            return failed(f"{call} gives {outputs} outputs: cross-entropy needs one score per class")
        if any(not p.requires_grad for p in params):
            return failed(f"{call} is frozen (requires_grad=False): the new head is what trains")
    return passed("one score per class for cross-entropy, one logit for BCE, all trainable")


@_never_raises
def check_optimizer(optimizer, model) -> Verdict:
    """``optimizer`` holds exactly ``model``'s trainable parameters (notebook 06).

    Flags: frozen parameters given to the optimizer, trainable ones (the head's)
    missing, parameters of another module.
    """
    import torch

    if not isinstance(optimizer, torch.optim.Optimizer):
        return failed(f"expected a torch.optim optimizer, got {type(optimizer).__name__}")
    if not isinstance(model, torch.nn.Module):
        return failed(f"expected the model (an nn.Module), got {type(model).__name__}")
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


@_never_raises
def check_bce_loss(loss_fn) -> Verdict:
    """``loss_fn(logits, y)`` is the mean binary cross-entropy of one-logit outputs.

    logits: (N, 1) float, y: (N,) int64 labels 0/1. Compared with
    ``BCEWithLogitsLoss`` on the logits; flags the sigmoid applied twice
    (BCEWithLogitsLoss given probabilities), a summed loss, cross-entropy over one
    output (always 0), int targets, (N, 1) vs (N,) shapes, a result without gradient,
    and sigmoid + BCELoss (right for small logits, wrong for large ones).
    """
    import torch
    import torch.nn.functional as F

    if not callable(loss_fn):
        return failed(f"expected the function loss_fn, got {type(loss_fn).__name__}")
    z = torch.tensor([[2.0], [-1.0], [0.5], [-3.0], [1.5]])
    y = torch.tensor([1, 0, 0, 1, 1])

    def run(logits, labels):
        leaf = logits.clone().requires_grad_(True)
        return loss_fn(leaf, labels.clone())

    try:
        value = run(z, y)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
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
        return failed(f"loss_fn returned {type(value).__name__}: return the loss as a 0-d tensor")
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


@_never_raises
def check_train_step(train_step) -> Verdict:
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

    if not callable(train_step):
        return failed(f"expected the function train_step, got {type(train_step).__name__}")
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 5, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])

    def loss_fn(logits, labels):
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float())

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        start = torch.nn.Linear(5, 1)

    def reference(accumulate: bool):
        m = copy.deepcopy(start)
        opt = torch.optim.SGD(m.parameters(), lr=0.5)
        states, losses = [], []
        for _ in range(2):
            if not accumulate:
                opt.zero_grad()
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            states.append([p.detach().clone() for p in m.parameters()])
        return states, losses

    good, good_losses = reference(accumulate=False)
    accumulated, _ = reference(accumulate=True)
    model = copy.deepcopy(start)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    returned = []
    for step in range(2):
        try:
            returned.append(train_step(model, optimizer, loss_fn, x, y))
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
            return failed(f"train_step returned {type(value).__name__}: return the loss (a float)")
        if abs(number - expected) > 1e-5 * max(1.0, abs(expected)):
            return failed("the returned value is not this batch's loss (computed before the update)")
    return passed("forward, loss, zero_grad, backward, step: one clean update per call")


@_never_raises
def check_evaluate(evaluate) -> Verdict:
    """``evaluate(model, X, y)`` returns the accuracy in eval mode, without gradients.

    Tried on a head with K = 3 outputs (argmax) and on a one-logit head (class 1 when
    the logit is > 0), both with a dropout that the evaluation must switch off. Flags:
    the model left in train mode, gradients tracked, a count or a percentage instead
    of a fraction, argmax on one logit, a wrong accuracy.
    """
    import torch
    from torch import nn

    if not callable(evaluate):
        return failed(f"expected the function evaluate, got {type(evaluate).__name__}")

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
            value = evaluate(model, X.clone(), y.clone())
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
            return failed(f"evaluate returned {type(value).__name__}: return the accuracy (a float)")
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
