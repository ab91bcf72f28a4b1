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
