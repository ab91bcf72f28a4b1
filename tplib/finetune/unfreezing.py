"""Partial unfreezing, measured: a frozen base against the same base with its last one
or two blocks trained too, on augmented photos, over several seeds (notebook 06 on 15
Scene, the handout's "with propagating the gradients").

Training the last blocks end to end on a CPU would run the whole network on every photo
at every epoch. The blocks before the first unfrozen one stay frozen, in eval mode, so
they give a photo the same output at every epoch: like the features of a frozen base,
that output can be computed once. Augmentation changes the photo, so it is computed once
**per augmented view**: every training photo gets ``views`` fixed views (the photo, its
mirror image, then random flips and shifted crops, drawn once from a seeded generator),
each view goes through the frozen blocks once, and every epoch draws one view per photo.
The trainable blocks and the head then run on those stored tensors: the same numbers as
end to end on the same views, at a fraction of the cost. The frozen base sees the same
views (its head trains on the pooled features of every view), so the three set-ups
differ only in what trains.

Every unfrozen set-up starts from the head trained on the frozen base with the same seed
(a random head would send large, random gradients into the pretrained blocks) and gives
its base blocks a smaller learning rate than the head's. BatchNorm layers stay in eval
mode (:class:`FineTuneModel`'s ``freeze_bn``). Each set-up is scored once, after its last
epoch, on the test photos (unaugmented): no best epoch is picked on the test split.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..errors import OptionError
from .heads import evaluate_batches, evaluate_head, train_head, train_step
from .models import FineTuneModel, attach_head, cut_base, input_of
from .runtime import seeded, training_device
from .settings import DEFAULTS, check_count, check_training
from .training import augment_batch, check_decoded, decode_images, param_groups, split_parts


@dataclass(frozen=True)
class UnfreezeRun:
    """One set-up trained with one seed.

    ``unfrozen``: how many of the base's last blocks trained (0: the frozen base, only
    the head); ``blocks`` their names; ``trainable``: parameters that trained (base
    blocks + head); ``seconds_per_epoch``: the training steps of one epoch (one view
    of every training photo through the trainable blocks, forward and backward).
    """

    unfrozen: int
    blocks: tuple[str, ...]
    seed: int
    test_accuracy: float
    n_correct: int
    n_test: int
    trainable: int
    epochs: int
    seconds_per_epoch: float


@dataclass
class UnfreezeComparison:
    """Every run of :func:`unfreezing_comparison` and what they shared.

    ``views``: augmented views per training photo; ``n_train``/``n_test``: photos;
    ``frozen_blocks_seconds``: the frozen blocks run once on every view and test photo;
    ``settings``: epochs, learning rates, batch size.
    """

    network: str
    runs: list[UnfreezeRun]
    n_train: int
    n_test: int
    views: int
    frozen_blocks_seconds: float
    settings: dict = field(default_factory=dict)

    def setups(self) -> list[int]:
        """The set-ups measured (numbers of unfrozen blocks), frozen first."""
        return sorted({r.unfrozen for r in self.runs})

    def accuracies(self, unfrozen: int) -> np.ndarray:
        """(seeds,) test accuracies of one set-up, in seed order."""
        return np.array([r.test_accuracy for r in sorted(self.runs, key=lambda r: r.seed)
                         if r.unfrozen == unfrozen])

    def gains(self, unfrozen: int) -> np.ndarray:
        """(seeds,) test accuracy minus the frozen base's, seed by seed (same views,
        same head to start from)."""
        return self.accuracies(unfrozen) - self.accuracies(0)

    def label(self, unfrozen: int, sep: str = " ") -> str:
        """A set-up's name: "frozen base + head", "last 2 blocks (block7, head)"."""
        if unfrozen == 0:
            return f"frozen base{sep}+ new head"
        blocks = next(r.blocks for r in self.runs if r.unfrozen == unfrozen)
        return f"last {unfrozen} block{'s' * (unfrozen > 1)}{sep}({', '.join(blocks)})"

    def table(self) -> str:
        """One line per set-up: what trains, mean and per-seed test accuracy, the gain
        over the frozen base (mean, min..max over seeds) and seconds per epoch."""
        lines = [f"{'set-up':<30} {'trained':>10}  {'test acc. (mean)':>16}  per seed"
                 f"{'':<16}{'gain vs frozen (min..max)':>27}  {'s/epoch':>8}"]
        for k in self.setups():
            runs = sorted((r for r in self.runs if r.unfrozen == k), key=lambda r: r.seed)
            name = self.label(k)
            acc = self.accuracies(k)
            seeds = " ".join(f"{a:.3f}" for a in acc)
            if k == 0:
                gain = "-"
            else:
                g = self.gains(k)
                gain = f"{g.mean():+.3f} ({g.min():+.3f}..{g.max():+.3f})"
            lines.append(f"{name:<30} {runs[0].trainable:>10,}  {acc.mean():>16.3f}  {seeds:<24}"
                         f"{gain:>27}  {np.mean([r.seconds_per_epoch for r in runs]):>8.2f}")
        return "\n".join(lines)


def _first_module(blocks, k: int) -> str:
    """Name of the first module of the k-th block from the end (where the trainable part
    of a base whose last k blocks train begins)."""
    return blocks[-k][1][0]


class ResumeAt(nn.Module):
    """A :class:`FineTuneModel` run from one of its base's modules on: the module gets
    ``h`` (what the frozen blocks before it gave, stored) in place of what a photo would
    give it, and the rest of the base and the head run as usual.

    (N, ...) stored inputs of ``module`` -> (N, K) logits. The blocks before ``module``
    run only on a tiny dummy image (their output is replaced), so they cost nothing.
    ``train()``/``eval()`` reach the model, whose frozen blocks stay in eval mode.
    """

    def __init__(self, model: FineTuneModel, module: str, image_size: int):
        super().__init__()
        self.model = model
        self.module = module
        self.dummy_size = max(32, image_size // 4)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """(N, ...) stored inputs of ``module`` -> (N, d) features at the model's cut."""
        target = self.model.base.get_submodule(self.module)
        handle = target.register_forward_pre_hook(lambda mod, inputs: (h,))
        try:
            dummy = torch.zeros(1, 3, self.dummy_size, self.dummy_size, device=h.device)
            return self.model.features(dummy)
        finally:
            handle.remove()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.features(h.float()))


def _check_setups(unfreeze, n_blocks: int) -> list[int]:
    values = list(unfreeze) if isinstance(unfreeze, (list, tuple)) else [unfreeze]
    if not values:
        raise OptionError("unfreeze is empty: give the numbers of last blocks to train, e.g. (1, 2)")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n_blocks:
            raise OptionError(f"unfreeze must hold whole numbers of last blocks in [1, {n_blocks - 1}], "
                              f"not {k!r}")
    return sorted(set(int(k) for k in values))


def _check_seeds(seeds) -> list[int]:
    values = list(seeds) if isinstance(seeds, (list, tuple, range)) else [seeds]
    if not values:
        raise OptionError("seeds is empty: give at least one seed, e.g. (0, 1, 2)")
    for s in values:
        check_training(seed=s)
    return list(dict.fromkeys(int(s) for s in values))  # each seed once, in the order given


def make_view(x: torch.Tensor, v: int, gen: torch.Generator) -> torch.Tensor:
    """View number ``v`` of a batch of normalised photos x (N, 3, S, S), same shape: 0 the
    photos, 1 their mirror images, 2 and more random flips and crops shifted by up to S/8
    pixels (reflect-padded), drawn from ``gen``."""
    if v == 0:
        return x
    if v == 1:
        return x.flip(3)
    return augment_batch(x, gen, flip=True, pad=max(1, x.shape[-1] // 8))


@dataclass
class StoredViews:
    """What the frozen blocks gave, kept in memory: ``H`` (views, N, ...) float16 for the
    training photos' views, ``y`` (N,), ``Ht`` (N_test, ...) float16 for the test photos,
    ``yt`` (N_test,); ``start`` is the base module that receives them (the first module
    of the earliest block that may train), ``seconds`` what computing (or reading) them
    took, ``from_cache`` whether both were read from tplib's feature cache."""

    network: str
    start: str
    unfreezable: int
    H: torch.Tensor
    y: torch.Tensor
    Ht: torch.Tensor
    yt: torch.Tensor
    n_classes: int
    seconds: float
    from_cache: bool = False

    @property
    def views(self) -> int:
        return int(self.H.shape[0])


#: How the views are made (a change gives the cached views a new key): see make_view.
VIEW_RECIPE = "v0 photo, v1 mirror, v2+ flip and reflect-padded shift up to S/8; seed 0; batches of 64"


def _views_key(backbone, start: str, views: int, paths, device: torch.device) -> str:
    """The feature-cache key of ``views`` stored views of ``paths`` (one "layer" per view)."""
    from ..cache import make_key

    nodes = {f"view{v}": f"input of {start}; view {v}: {VIEW_RECIPE}" for v in range(views)}
    return make_key(backbone, nodes, "none", "fp32", device.type, False, "float16", paths)


def store_views(backbone, train: Split, test: Split, *, unfreezable: int = 2, views: int = 4,
                device: str | None = None, cache: bool = True,
                progress: bool | None = None) -> StoredViews:
    """Run the blocks that stay frozen once on ``views`` augmented views of every training
    photo (:func:`make_view`; the same views whatever the seed) and on every test photo.

    ``unfreezable``: how many of the base's last blocks any later set-up may train; the
    stored tensors are the input of the first of them (EfficientNet-Lite0, 2: block7's
    input, 192 x 7 x 7 values per view). The slow part of :func:`unfreezing_comparison`:
    about one pass of the network per view and test photo, on ``device`` (default the
    run profile's: ``ci`` the CPU, ``full`` a CUDA GPU when there is one). With
    ``cache``, they are kept in tplib's feature cache like features (checksummed, written
    atomically, read from a class cache too, keyed by the network's weights, the
    files, the block, the views and the device type), so the next run reads them.
    """
    from tqdm.auto import tqdm

    from .. import cache as feature_cache
    from ..profile import default_progress

    check_count("views", views)
    base, _, _, blocks = cut_base(backbone)
    unfreezable = _check_setups(unfreezable, len(blocks))[-1]
    device = training_device(device)
    start = _first_module(blocks, unfreezable)
    preprocess = backbone.preprocess
    base.to(device)
    with torch.no_grad():
        size = preprocess.size
        shape = tuple(input_of(base, start, torch.zeros(1, 3, size, size, device=device)).shape[1:])
    t0 = time.perf_counter()

    def frozen_rows(split, name: str, n_views: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(n_views, n_ok, *shape) float16 rows, (n_ok,) labels, read from the cache?"""
        paths, labels = split_parts(split, name)
        key = _views_key(backbone, start, n_views, paths, device) if cache else None
        hit = feature_cache.load(key) if key else None
        if hit is not None:
            arrays, valid, _, _ = hit
            rows = torch.stack([torch.from_numpy(arrays[f"view{v}"]) for v in range(n_views)])
            return rows.reshape(n_views, -1, *shape), torch.from_numpy(labels[valid]), True
        X, y, skipped = decode_images(split, preprocess, progress=progress, desc=f"decode {name}")
        check_decoded(X, y, skipped, name, min_classes=2 if name == "train" else 1)
        bar = tqdm(total=len(X) * n_views, desc=f"frozen blocks, {name}", unit="img",
                   disable=not default_progress(progress), leave=False)
        gen = torch.Generator().manual_seed(0)  # the views: the same for every seed
        step = DEFAULTS.eval_batch_size
        parts: list[list[torch.Tensor]] = [[] for _ in range(n_views)]
        with torch.no_grad():
            for s in range(0, len(X), step):  # batch by batch: the float views of all
                x = preprocess.normalize(X[s:s + step])  # photos would not fit in memory
                for v in range(n_views):
                    # float16: half the memory; 3 significant digits, like bf16 features
                    parts[v].append(input_of(base, start, make_view(x, v, gen).to(device)).half().cpu())
                    bar.update(len(x))
        bar.close()
        rows = torch.stack([torch.cat(p) for p in parts])
        if key:
            bad = {p for p, _ in skipped}
            ok = np.array([str(p) not in bad for p in paths], dtype=bool)
            dims = {f"view{v}": int(np.prod(shape)) for v in range(n_views)}
            writer, unavailable = feature_cache.open_writer_or_memory(key, dims, len(paths),
                                                                      np.dtype("float16"))
            if unavailable:
                feature_cache.logger.warning("%s; the stored views are not cached", unavailable)
            else:
                with writer:
                    if writer.done != len(paths):  # else a sealed-but-not-renamed leftover
                        writer.write(0, {f"view{v}": rows[v].reshape(len(X), -1).numpy()
                                         for v in range(n_views)}, ok, skipped)
                    writer.finish(info=feature_cache.entry_info(
                        backbone.name, {f"view{v}": start for v in range(n_views)},
                        "none", paths, precision="fp32", dtype="float16"))
        return rows, y, False

    H, y, train_cached = frozen_rows(train, "train", views)
    Ht, yt, test_cached = frozen_rows(test, "test", 1)
    n_classes = max(len(getattr(train, "classes", ())), int(max(y.max(), yt.max())) + 1)
    return StoredViews(backbone.name, start, unfreezable, H, y, Ht[0], yt, n_classes,
                       time.perf_counter() - t0, train_cached and test_cached)


def unfreezing_comparison(
    backbone,
    train: Split,
    test: Split,
    *,
    unfreeze=(1, 2),
    seeds=(0, 1, 2),
    views: int = 4,
    epochs: int = 4,
    head_epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    base_lr: float | None = None,
    batch_size: int = DEFAULTS.batch_size,
    stored: StoredViews | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> UnfreezeComparison:
    """Test accuracy of the frozen ``backbone`` + a new head against the same with its
    last blocks trained too, on the same augmented training photos, one run per seed.

    Args:
        backbone: the pretrained network; its base ends at its default feature layer
            and its blocks are the registry's (EfficientNet-Lite0: ... block7, head;
            VGG16: ... block5, fc6, fc7).
        train, test: data splits (every class in ``train``).
        unfreeze: the set-ups besides the frozen base: numbers of last blocks trained.
        seeds: one run of every set-up per seed (head initialisation, the order of the
            photos, which view each photo shows at each epoch). The views are the same
            for every seed.
        views: fixed augmented views per training photo (see :func:`make_view`); >= 1.
        epochs: epochs of the unfrozen set-ups (one view of every photo per epoch),
            after the head; head_epochs: epochs of the head on the frozen base's
            pooled features of every view.
        lr: Adam's learning rate for the head; base_lr: for the trainable base blocks
            (default ``lr * DEFAULTS.base_lr_factor``, a tenth).
        stored: the output of :func:`store_views` for these splits, to try other
            settings without running the frozen blocks again (``train``, ``test`` and
            ``views`` are then not read).
        device: where the blocks run and train (default the run profile's: ``ci`` the
            CPU, deterministic; ``full`` a CUDA GPU when there is one).

    Returns:
        :class:`UnfreezeComparison` (``.table()``, ``.gains(k)``).
    """
    from tqdm.auto import tqdm

    from ..profile import default_progress

    check_training(epochs=epochs, lr=lr, base_lr=base_lr, batch_size=batch_size)
    check_training(epochs=head_epochs)
    seeds = _check_seeds(seeds)
    _, _, _, blocks = cut_base(backbone)
    setups = _check_setups(unfreeze, len(blocks))
    device = training_device(device)
    if stored is None:
        stored = store_views(backbone, train, test, unfreezable=max(setups), views=views,
                             device=device, progress=progress)
    elif stored.network != backbone.name or stored.unfreezable < max(setups):
        raise OptionError(f"stored views hold {stored.network}'s last {stored.unfreezable} blocks' "
                          f"input; call store_views({backbone.name}, ..., unfreezable={max(setups)})")
    base_lr = lr * DEFAULTS.base_lr_factor if base_lr is None else base_lr
    show = default_progress(progress)
    size = backbone.preprocess.size
    H, y, Ht, yt, start, n_classes = (stored.H, stored.y, stored.Ht, stored.yt, stored.start,
                                      stored.n_classes)
    n_views, n_train = H.shape[0], H.shape[1]

    # The frozen base's pooled features of every view (for its head) and of the test photos.
    frozen = ResumeAt(attach_head(backbone, n_classes), start, size).to(device)

    def pooled(h: torch.Tensor) -> torch.Tensor:
        return frozen.features(h.to(device).float()).cpu()
    with torch.no_grad():
        F = torch.cat([pooled(H[v, s:s + 256]) for v in range(n_views)
                       for s in range(0, n_train, 256)]).numpy()
        Ft = torch.cat([pooled(Ht[s:s + 256]) for s in range(0, len(Ht), 256)]).numpy()
    Fy = y.repeat(n_views).numpy()

    runs: list[UnfreezeRun] = []
    for seed in seeds:
        head = train_head(F, Fy, epochs=head_epochs, lr=lr, n_classes=n_classes, seed=seed,
                          progress=False)
        ev = evaluate_head(head.head, Ft, yt.numpy())
        runs.append(UnfreezeRun(0, (), seed, float(ev.accuracy), ev.n_correct, ev.n_images,
                                sum(p.numel() for p in head.head.parameters()), head_epochs,
                                float(np.mean(head.history["epoch_seconds"]))))
        for k in setups:
            model = attach_head(backbone, n_classes, freeze=k, head=copy.deepcopy(head.head))
            runner = ResumeAt(model, start, size).to(device)
            optimizer = torch.optim.Adam(param_groups(model, lr, base_lr),
                                         weight_decay=DEFAULTS.weight_decay)
            order = torch.Generator().manual_seed(seed)
            times = []
            with seeded(seed):
                for _ in tqdm(range(epochs), desc=f"last {k} unfrozen, seed {seed}", unit="epoch",
                              disable=not show, leave=False):
                    runner.train()
                    t_epoch = time.perf_counter()
                    view = torch.randint(n_views, (n_train,), generator=order)
                    for idx in torch.randperm(n_train, generator=order).split(batch_size):
                        train_step(runner, optimizer, H[view[idx], idx].to(device).float(),
                                   y[idx].to(device))
                    times.append(time.perf_counter() - t_epoch)
            ev = evaluate_batches(runner, Ht, yt, transform=lambda h: h.float())
            trained = model.parameter_counts()
            runs.append(UnfreezeRun(k, tuple(model.trainable_blocks), seed, float(ev.accuracy),
                                    ev.n_correct, ev.n_images,
                                    trained["base_trainable"] + trained["head"], epochs,
                                    float(np.mean(times))))
    return UnfreezeComparison(
        network=backbone.name, runs=runs, n_train=n_train, n_test=len(Ht), views=n_views,
        frozen_blocks_seconds=stored.seconds,
        settings=dict(epochs=epochs, head_epochs=head_epochs, lr=lr, base_lr=base_lr,
                      batch_size=batch_size))
