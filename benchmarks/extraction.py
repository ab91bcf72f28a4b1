#!/usr/bin/env python
"""Feature-extraction benchmark for tplib: ratios against the lab's own loop.

    python benchmarks/extraction.py [--model vgg16|efficientnet_lite0] [--images N]
        [--data DIR] [--sweep-memory] [--accuracy]

Every compared pair of paths runs in this one process, interleaved round by round
(A B C D, then D C B A, ...), after one small warm-up of each path; the reported
time of a path is the median over rounds, and the lines that matter are the RATIOS
(other processes may share the CPU, so absolute times are noisy). See
benchmarks/README.md for what each line means. Nothing is written outside a
temporary directory: TPLIB_CACHE points there for the whole run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "15SceneData"
N_SCENE = (1500, 2985)  # 15 Scene: train, test images
GB = 1e9

# Targets of the summary table.
TARGET_LAB = 3.0
TARGET_CEILING = 0.85
TARGET_ALL_LAYERS = 1.3
TARGET_CACHE = 50.0
TARGET_RSS = 2 * GB


# ------------------------------------------------------------------ helpers
def log(msg: str = "") -> None:
    print(msg, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(paths: dict, repeats: int) -> dict[str, list[float]]:
    """Run every path once per round, order reversed every other round; seconds per path."""
    names = list(paths)
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            seconds, _ = timed(paths[name])
            times[name].append(seconds)
        log(f"    round {r + 1}/{repeats}: "
            + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names))
    return times


def med(values) -> float:
    return statistics.median(values)


def pair_ratios(num: list[float], den: list[float]) -> str:
    return "[" + ", ".join(f"{a / b:.2f}" for a, b in zip(num, den)) + "]"


def spread_paths(paths: list, n: int) -> list:
    """n paths spread evenly over the list (so every class is represented)."""
    if n >= len(paths):
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def all_layers(model_name: str, backbone) -> list[str]:
    """Every ReLU and pooling layer (VGG16), or every named stage up to 'pooled' (Lite)."""
    if model_name == "vgg16":
        return [k for k in backbone.layers if k.startswith(("relu", "pool"))]
    return [k for k in backbone.layers if k != "logits"]


def load_model(name: str):
    from tplib.models import load_backbone

    if name == "vgg16":  # ImageNet weights are not available here; speed does not depend on them
        return load_backbone("vgg16", weights="random", download=False)
    return load_backbone(name)


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """Peak RSS of this process's own address space: VmHWM from /proc/self/status.

    Not ``ru_maxrss``: on Linux, exec() carries the parent's high-water mark into the child
    (fs/exec.c keeps the old mm's hiwater in signal->maxrss), so a child started by
    subprocess reports at least the parent's peak -- exactly what must not count here.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: best effort


# ------------------------------------------------------------------ the lab's own loop
def make_lab_model(backbone):
    """The handout's feature extractor, batch 1: VGG16relu7, or Lite's pre-logits head."""
    import torch

    if backbone.name == "vgg16":
        from tplib.models import VGG16relu7

        return VGG16relu7(backbone.model).eval()
    model = backbone.model

    class LitePooled(torch.nn.Module):  # the same thing for EfficientNet-Lite: 1280-d pooled
        def forward(self, x):
            return model.forward_head(model.forward_features(x), pre_logits=True)

    return LitePooled().eval()


def lab_loop(model, paths, mean, std):
    """The classic handout, one image at a time (fp32, NCHW, batch 1)."""
    import numpy as np
    import torch
    from PIL import Image

    mean = np.array(mean).reshape(1, 1, 3)
    std = np.array(std).reshape(1, 1, 3)
    features = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        img = img.resize((224, 224), Image.BILINEAR)
        x = np.asarray(img) / 255.0
        x = (x - mean) / std
        x = torch.from_numpy(x.transpose(2, 0, 1).copy()).float().unsqueeze(0)
        with torch.no_grad():
            f = model(x)
        features.append(f.numpy().ravel())
    return np.stack(features)


def forward_only(model, n_images: int, batch_size: int, precision: str):
    """The ceiling: random channels_last batches through the model, no decode, no hooks."""
    import torch

    from tplib.features import _autocast

    dev = torch.device("cpu")
    sizes = [min(batch_size, n_images - s) for s in range(0, n_images, batch_size)]
    inputs = {b: torch.randn(b, 3, 224, 224).contiguous(memory_format=torch.channels_last)
              for b in set(sizes)}

    def run():
        with torch.no_grad(), _autocast(precision, dev):
            for b in sizes:
                model(inputs[b])
    return run


def layout_time(backbone) -> float | None:
    """Median seconds tplib spends per call preparing the model (BatchNorm folding, layout)."""
    import torch

    try:
        from tplib.features import _prepared_model  # private: only for this breakdown
    except ImportError:
        return None

    def once():
        with _prepared_model(backbone.model, torch.device("cpu"), True, True,
                             backbone.preprocess.size):
            pass
    return med([timed(once)[0] for _ in range(3)])


def inference_models(backbone):
    """(the model tplib runs: BatchNorm folded, channels_last; the same unfolded, or None)."""
    import copy

    import torch

    from tplib.fusion import fold_batchnorm

    folded, n_folded = fold_batchnorm(backbone.model, backbone.preprocess.size)
    plain = copy.deepcopy(backbone.model).eval().to(memory_format=torch.channels_last)
    if n_folded == 0:
        return plain, None, 0
    return folded.to(memory_format=torch.channels_last), plain, n_folded


# ------------------------------------------------------------------ (d) sweep child
def sweep_child(spec: dict) -> None:
    """Runs in a fresh process: an all-layer pooled sweep; prints one JSON line."""
    import torch  # noqa: F401  (imported before the baseline, like a notebook would)

    from tplib.data import load_dataset
    from tplib.engine import Engine  # noqa: F401
    from tplib.features import extract_features

    backbone = load_model(spec["model"])
    layers = all_layers(spec["model"], backbone)
    ds = load_dataset(spec["data"])
    train = spread_paths(ds.train.paths, spec["n_train"])
    test = spread_paths(ds.test.paths, spec["n_test"])
    base_rss = rss_bytes()
    base_max = peak_rss_bytes()
    t0 = time.perf_counter()
    dims = {}
    for split in (train, test):
        feats = extract_features(backbone, split, layers, pool="avg", cache=True, progress=False)
        dims = {k: int(v.shape[1]) for k, v in feats.arrays.items()}
        del feats
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("SWEEP-RESULT " + json.dumps(dict(
        peak=peak, base_rss=base_rss, base_max=base_max, seconds=seconds, ru_maxrss=inherited,
        n=len(train) + len(test), dims=dims, layers=layers)), flush=True)


# ------------------------------------------------------------------ main benchmark
def machine_lines() -> list[str]:
    import torch

    from tplib.engine import cpu_has_native_bf16

    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"native bf16 (AVX512-BF16/AMX): {'yes' if cpu_has_native_bf16() else 'no'}, "
        f"python {platform.python_version()}",
        f"load average at start: {load_avg()} (other processes share the CPU; read the ratios)",
        "env: " + ", ".join(f"{k}={os.environ.get(k, '(unset)')}"
                            for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")),
    ]


def pick_images(data: Path | None, n: int, tmp: Path) -> tuple[list[Path], str, Path | None]:
    from tplib.data import load_dataset
    from tplib.synthetic import generate_scene_standin

    if data is not None:
        ds = load_dataset(data)
        paths = ds.train.paths + ds.test.paths
        return spread_paths(paths, n), f"{ds.root} (real data, {len(paths)} images)", ds.root
    per_class = max(1, math.ceil(n / 15))
    root = generate_scene_standin(tmp / "standin", n_train=per_class, n_test=0, seed=0)
    ds = load_dataset(root)
    return spread_paths(ds.train.paths, n), f"{root} (GENERATED stand-in)", None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16", choices=("vgg16", "efficientnet_lite0"))
    p.add_argument("--images", type=int, default=None,
                   help="images per timed path (default 32 for vgg16, 128 for lite0)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.exists() else None,
                   help="image folder with train/ and test/ (default: 15 Scene next to the repo, "
                        "else a generated stand-in)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per comparison (default 3; 2 for the slow bf16 test)")
    p.add_argument("--precision-images", type=int, default=None,
                   help="images for the fp32 vs bf16 speed test (default 8 for vgg16, 16 for "
                        "lite0: emulated bf16 is 10-20x slower here)")
    p.add_argument("--sweep-memory", action="store_true", help="(d) peak RSS of an all-layer sweep")
    p.add_argument("--sweep-model", default=None, choices=("vgg16", "efficientnet_lite0"),
                   help="network of the sweep (default: --model)")
    p.add_argument("--sweep-images", type=int, default=None,
                   help="images of the sweep (default 4485 = 15 Scene for lite0, 96 for vgg16)")
    p.add_argument("--accuracy", action="store_true",
                   help="(e) fp32 vs bf16 feature difference and LinearSVC accuracy on real 15 Scene")
    p.add_argument("--accuracy-per-class", type=int, default=5,
                   help="train and test images per class for --accuracy (default 5: bf16 is "
                        "emulated and slow here)")
    p.add_argument("--_sweep-child", dest="sweep_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.sweep_child:
        sweep_child(json.loads(args.sweep_child))
        return 0

    if args.data is not None and not args.data.exists():
        p.error(f"--data {args.data} does not exist")
    lite = args.model != "vgg16"
    n = args.images or (128 if lite else 32)
    repeats = args.repeats or 3
    n_prec = args.precision_images or (16 if lite else 8)
    tmp = Path(tempfile.mkdtemp(prefix="tplib-bench-"))
    os.environ["TPLIB_CACHE"] = str(tmp / "cache")  # never the user's cache
    try:
        return run(args, lite, n, repeats, n_prec, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, lite: bool, n: int, repeats: int, n_prec: int, tmp: Path) -> int:
    import numpy as np
    import torch

    from tplib.engine import Engine, resolve_precision, resolve_threads
    from tplib.features import extract_features, iter_batches

    t_start = time.perf_counter()
    log("=" * 78)
    log("tplib extraction benchmark")
    for line in machine_lines():
        log(line)
    backbone = load_model(args.model)
    log(f"model: {backbone.describe()}")
    paths, source, real_root = pick_images(args.data, n, tmp)
    n = len(paths)
    prec = resolve_precision("auto", torch.device("cpu"))
    log(f"images: {n} from {source}")
    bs = getattr(backbone, "batch_size", 32)  # extract_features' default batch for this network
    log(f"tplib defaults here: batch {bs} (backbone.batch_size), precision auto -> {prec}, "
        f"channels_last, BatchNorms folded (if any), grayscale resized as one channel, "
        f"{resolve_threads(None, torch.device('cpu'))} decode threads beside the forward "
        f"(tplib.features.resolve_threads)")
    log(f"rounds per comparison: {repeats} ({min(repeats, 2)} for bf16; interleaved, order "
        f"reversed every other round), median time; each path warmed up once on 4 images")
    log(f"TPLIB_CACHE={os.environ['TPLIB_CACHE']} (temporary)")
    results: dict[str, dict] = {}

    layer = backbone.default_layer  # relu7 / pooled
    layers_all = all_layers(args.model, backbone)
    lab_model = make_lab_model(backbone)
    mean, std = backbone.preprocess.mean, backbone.preprocess.std
    ceiling_model, unfolded_model, n_folded = inference_models(backbone)

    out: dict = {}

    def p_lab(ps=paths):
        out["lab"] = lab_loop(lab_model, ps, mean, std)

    def p_tplib(ps=paths):
        out["tplib"] = extract_features(backbone, ps, layer, cache=False, progress=False)

    def p_all(ps=paths):
        out["all"] = extract_features(backbone, ps, layers_all, pool="avg", cache=False, progress=False)

    p_ceiling = forward_only(ceiling_model, n, bs, prec)

    # ---------------------------------------------------------------- (a) + (b)
    log()
    log(f"(a) lab loop vs tplib default, and (b) {layer} alone vs all layers "
        f"(measured in the same interleaved rounds)")
    warm = paths[:4]
    compared = {"lab": p_lab, "tplib": p_tplib, "ceiling": p_ceiling, "all": p_all}
    warmups = [lambda: p_lab(warm), lambda: p_tplib(warm), forward_only(ceiling_model, 4, bs, prec),
               lambda: p_all(warm)]
    default_threads = resolve_threads(None, torch.device("cpu"))
    if default_threads == 0:  # why tplib decodes between batches here: the alternative
        compared["threads2"] = lambda: extract_features(backbone, paths, layer, cache=False,
                                                        progress=False, engine=Engine(threads=2))
    if unfolded_model is not None:  # what folding the BatchNorms gains, forward only
        compared["unfolded"] = forward_only(unfolded_model, n, bs, prec)
        warmups.append(forward_only(unfolded_model, 4, bs, prec))
    for fn in warmups:
        fn()
    times = interleave(compared, repeats)
    t_lab, t_tp, t_ceil, t_all = (med(times[k]) for k in ("lab", "tplib", "ceiling", "all"))
    lab_ips, tp_ips, ceil_ips = n / t_lab, n / t_tp, n / t_ceil
    lab_feats, tp_feats = out["lab"], out["tplib"][layer]
    agree = float(np.abs(lab_feats - tp_feats).max() / max(np.abs(lab_feats).max(), 1e-12))
    # decode alone, for the breakdown (cheap)
    t_decode, _ = timed(lambda: [b for b in iter_batches(paths, backbone.preprocess, bs, threads=0)])
    t_layout = layout_time(backbone)
    log(f"  lab loop (batch 1, fp32, NCHW)     : {lab_ips:7.2f} img/s  ({t_lab:.1f} s)")
    log(f"  tplib extract_features defaults    : {tp_ips:7.2f} img/s  ({t_tp:.1f} s)")
    log(f"  RATIO tplib / lab loop             : {t_lab / t_tp:7.2f}x   "
        f"(per round {pair_ratios(times['lab'], times['tplib'])}; target >= {TARGET_LAB}x)")
    folded = f", {n_folded} BatchNorms folded" if n_folded else ""
    log(f"  forward-only ceiling (the model tplib runs: batch {bs}, channels_last{folded}, {prec}, "
        f"no_grad, random input): {ceil_ips:.2f} img/s")
    log(f"  RATIO tplib end-to-end / ceiling   : {t_ceil / t_tp:7.1%}  "
        f"(per round {pair_ratios(times['ceiling'], times['tplib'])}; target >= {TARGET_CEILING:.0%})")
    log(f"  forward-only ceiling / lab loop    : {t_lab / t_ceil:7.2f}x   (what batching and "
        f"channels_last alone gain over the lab loop, without decoding)")
    if unfolded_model is not None:
        t_unf = med(times["unfolded"])
        log(f"  forward only, BatchNorms not folded: {n / t_unf:.2f} img/s; RATIO folded / not "
            f"folded (speed): {t_unf / t_ceil:.2f}x (per round "
            f"{pair_ratios(times['unfolded'], times['ceiling'])})")
    if "threads2" in times:
        t_thr = med(times["threads2"])
        log(f"  tplib with 2 decode threads beside the forward: {n / t_thr:.2f} img/s; RATIO "
            f"default (decode between batches) / 2 threads (speed): {t_thr / t_tp:.2f}x "
            f"(per round {pair_ratios(times['threads2'], times['tplib'])})")
    if t_ceil > t_tp:
        log("  NOTE: the 'ceiling' is slower than tplib here, so it is no ceiling: back-to-back "
            "forwards with 2 OpenMP threads that spin-wait (libgomp's default) on 2 shared cores "
            "lose more than tplib's loop; see benchmarks/README.md (OMP_WAIT_POLICY)")
    layout = "n/a" if t_layout is None else f"{t_layout:.2f} s per call"
    log(f"  breakdown: decode+resize alone {n / t_decode:.1f} img/s ({t_decode:.2f} s for {n}, "
        f"one thread, no forward); preparing the model (BatchNorm folding on a copy, "
        f"channels_last): {layout}")
    interp = backbone.preprocess.interpolation
    why = ("" if interp == "bilinear" else
           f" (not equal by design: tplib resizes with this model's own {interp}, the lab "
           f"loop with bilinear)")
    log(f"  check: lab loop and tplib {layer} agree to max|diff|/max|x| = {agree:.2e}{why}")
    results["lab"] = dict(value=t_lab / t_tp, ok=t_lab / t_tp >= TARGET_LAB,
                          text=f"{t_lab / t_tp:.2f}x", target=f">= {TARGET_LAB}x")
    results["ceiling"] = dict(value=t_ceil / t_tp, ok=t_ceil / t_tp >= TARGET_CEILING,
                              text=f"{t_ceil / t_tp:.1%}", target=f">= {TARGET_CEILING:.0%}")
    dims_all = sum(v.shape[1] for v in out["all"].arrays.values())
    log()
    log(f"(b) {layer} alone vs {len(layers_all)} layers pooled (avg) in one pass: "
        f"{', '.join(layers_all)} ({dims_all:,} values per image)")
    log(f"  {layer} alone                      : {n / t_tp:7.2f} img/s  ({t_tp:.1f} s)")
    log(f"  all layers, pool=avg               : {n / t_all:7.2f} img/s  ({t_all:.1f} s)")
    log(f"  RATIO all / {layer} alone (time)     : {t_all / t_tp:7.2f}x   "
        f"(per round {pair_ratios(times['all'], times['tplib'])}; target <= {TARGET_ALL_LAYERS}x)")
    results["all"] = dict(value=t_all / t_tp, ok=t_all / t_tp <= TARGET_ALL_LAYERS,
                          text=f"{t_all / t_tp:.2f}x", target=f"<= {TARGET_ALL_LAYERS}x")
    del ceiling_model, unfolded_model, out["all"]

    # ---------------------------------------------------------------- (c) cache
    log()
    log("(c) first extraction (cache=True, empty cache) vs cache hit, same images")
    firsts, hits, reads = [], [], []
    cache_root = Path(os.environ["TPLIB_CACHE"])
    for r in range(repeats):
        os.environ["TPLIB_CACHE"] = str(cache_root.with_name(f"cache-c{r}"))  # fresh, empty
        t_first, f1 = timed(lambda: extract_features(backbone, paths, layer, cache=True, progress=False))
        assert not f1.from_cache
        round_hits = []
        for _ in range(3):
            t_hit, f2 = timed(lambda: extract_features(backbone, paths, layer, cache=True, progress=False))
            assert f2.from_cache
            round_hits.append(t_hit)
        firsts.append(t_first)
        hits.append(med(round_hits))
        reads.append(f2.seconds)
        log(f"    round {r + 1}/{repeats}: first {t_first:.2f} s, hit {hits[-1] * 1000:.1f} ms "
            f"(median of 3; Features.seconds of the hit: {f2.seconds * 1000:.1f} ms)")
    os.environ["TPLIB_CACHE"] = str(cache_root)
    t_first, t_hit = med(firsts), med(hits)
    log(f"  first extraction                   : {t_first:.2f} s")
    log(f"  cache hit (whole extract_features) : {t_hit * 1000:.1f} ms (key + reading the entry: "
        f"{med(reads) * 1000:.1f} ms)")
    log(f"  RATIO first / hit                  : {t_first / t_hit:7.1f}x   "
        f"(per round {pair_ratios(firsts, hits)}; target >= {TARGET_CACHE:.0f}x)")
    results["cache"] = dict(value=t_first / t_hit, ok=t_first / t_hit >= TARGET_CACHE,
                            text=f"{t_first / t_hit:.1f}x", target=f">= {TARGET_CACHE:.0f}x")

    # ---------------------------------------------------------------- (d) sweep memory
    if args.sweep_memory:
        results["rss"] = sweep_memory(args, tmp)
    else:
        results["rss"] = dict(value=None, ok=None, text="not measured (--sweep-memory)",
                              target="<= 2 GB")

    # ---------------------------------------------------------------- (e) precision
    log()
    pp = paths[:n_prec]
    log(f"(e) precision on this CPU: fp32 vs bf16 (autocast), extract_features {layer}, "
        f"{len(pp)} images (auto resolves to {prec} here)")
    fp32, bf16 = Engine(precision="fp32"), Engine(precision="bf16")
    extract_features(backbone, pp[:2], layer, engine=bf16, cache=False, progress=False)  # warm-up
    extract_features(backbone, pp[:2], layer, engine=fp32, cache=False, progress=False)
    times = interleave({
        "fp32": lambda: extract_features(backbone, pp, layer, engine=fp32, cache=False, progress=False),
        "bf16": lambda: extract_features(backbone, pp, layer, engine=bf16, cache=False, progress=False),
    }, min(repeats, 2))
    t32, t16 = med(times["fp32"]), med(times["bf16"])
    log(f"  fp32                               : {len(pp) / t32:7.2f} img/s")
    log(f"  bf16 (autocast)                    : {len(pp) / t16:7.2f} img/s")
    log(f"  RATIO bf16 speed / fp32 speed      : {t32 / t16:7.3f}x   "
        f"(per round {pair_ratios(times['fp32'], times['bf16'])})")
    results["bf16"] = dict(value=t32 / t16, ok=None, text=f"{t32 / t16:.3f}x speed",
                           target="(info)")
    if args.accuracy:
        results["accuracy"] = accuracy(args, backbone, layer, real_root)

    # ---------------------------------------------------------------- summary
    log()
    log("=" * 78)
    log(f"SUMMARY ({backbone.name}, {n} images; ratios of medians of interleaved rounds)")
    rows = [
        ("tplib default vs lab loop (speed-up)", results["lab"]),
        ("tplib end-to-end / forward-only ceiling", results["ceiling"]),
        (f"all {len(layers_all)} layers pooled / {layer} alone (time)", results["all"]),
        ("cache hit speed-up (first / hit)", results["cache"]),
        ("peak RSS of the all-layer sweep", results["rss"]),
        ("bf16 / fp32 speed on this CPU", results["bf16"]),
    ]
    if "accuracy" in results:
        rows.append(("SVM accuracy fp32 -> bf16", results["accuracy"]))
    log(f"  {'measure':<44} {'value':<36} {'target':<10} result")
    for name, r in rows:
        verdict = "-" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")
        log(f"  {name:<44} {r['text']:<36} {r['target']:<10} {verdict}")
    log(f"load average at end: {load_avg()}; total {time.perf_counter() - t_start:.0f} s")
    return 0


def sweep_memory(args, tmp: Path) -> dict:
    from tplib.synthetic import generate_scene_standin

    model = args.sweep_model or args.model
    total = sum(N_SCENE)
    n_sweep = min(args.sweep_images or (total if model != "vgg16" else 96), total)
    log()
    log(f"(d) peak resident memory of an all-layer pooled sweep (pool=avg, cache=True), {model}, "
        f"in a child process")
    t0 = time.perf_counter()
    root = generate_scene_standin(tmp / "standin-15scene", n_train=N_SCENE[0] // 15,
                                  n_test=N_SCENE[1] // 15, seed=0)
    log(f"  generated a 15-Scene-sized stand-in ({N_SCENE[0]} + {N_SCENE[1]} images) in "
        f"{time.perf_counter() - t0:.0f} s: {root}")
    n_train = round(n_sweep * N_SCENE[0] / total)
    spec = dict(model=model, data=str(root), n_train=n_train, n_test=n_sweep - n_train)
    env = dict(os.environ, TPLIB_CACHE=str(tmp / "cache-sweep"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--_sweep-child", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SWEEP-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        log(f"  the sweep child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return dict(value=None, ok=False, text="child failed", target="<= 2 GB")
    res = json.loads(line.split(" ", 1)[1])
    per_image = sum(res["dims"].values()) * 4
    full_bytes = total * per_image
    measured_bytes = res["n"] * per_image
    log(f"  {res['n']} images ({spec['n_train']} train + {spec['n_test']} test) in "
        f"{res['seconds']:.0f} s ({res['n'] / res['seconds']:.1f} img/s; child wall {wall:.0f} s)")
    log(f"  {len(res['layers'])} layers, {sum(res['dims'].values()):,} float32 values per image "
        f"= {per_image:,} bytes per image")
    log(f"  RSS after loading the model (before extraction): {res['base_rss'] / GB:.2f} GB "
        f"(peak so far {res['base_max'] / GB:.2f} GB)")
    inflated = (", inflated by the parent's peak, which exec() carries over"
                if res["ru_maxrss"] > 1.01 * res["peak"] else "")
    log(f"  PEAK RSS of the child (VmHWM)      : {res['peak'] / GB:.2f} GB for {res['n']} images "
        f"(ru_maxrss: {res['ru_maxrss'] / GB:.2f} GB{inflated})")
    log(f"  feature arrays for all {total} images: {total} x {sum(res['dims'].values()):,} x 4 "
        f"= {full_bytes / 1e6:.0f} MB (these {res['n']} images: {measured_bytes / 1e6:.0f} MB)")
    if res["n"] >= total:
        peak, label = res["peak"], "measured, full size"
    else:
        # The cache is written with plain writes (not mapped), so feature rows are in this
        # process's memory once: the arrays returned. The extrapolation adds the missing
        # rows once, on top of the measured peak (as if that peak and the rows coincided).
        peak = res["peak"] + (full_bytes - measured_bytes)
        label = f"EXTRAPOLATED from {res['n']}"
        log(f"  EXTRAPOLATED to {total} images: {res['peak'] / GB:.2f} GB + "
            f"{(full_bytes - measured_bytes) / 1e6:.0f} MB (the missing rows, held once: the "
            f"returned arrays) = {peak / GB:.2f} GB -- an estimate, not a measurement")
    return dict(value=peak, ok=peak <= TARGET_RSS, text=f"{peak / GB:.2f} GB ({label})",
                target="<= 2 GB")


def accuracy(args, backbone, layer, real_root) -> dict:
    import numpy as np

    from tplib.data import load_dataset
    from tplib.engine import Engine  # noqa: F401
    from tplib.features import extract_features
    from tplib.svm import svm_fit_score

    log()
    if real_root is None:
        log("  --accuracy needs the real 15 Scene (--data): skipped")
        return dict(value=None, ok=None, text="skipped (no real data)", target="(info)")
    k = args.accuracy_per_class
    ds = load_dataset(real_root).subset(k)
    log(f"(e, --accuracy) {backbone.describe()}; {layer} features of {len(ds.train)} train + "
        f"{len(ds.test)} test images of {real_root} ({k} per class), LinearSVC(C=1), L2 rows")
    feats, secs = {}, {}
    for prec in ("fp32", "bf16"):
        for split in ("train", "test"):
            t, f = timed(lambda split=split, prec=prec: extract_features(
                backbone, getattr(ds, split), layer, engine=Engine(precision=prec), cache=False,
                progress=False))
            feats[prec, split] = f
            secs[prec] = secs.get(prec, 0.0) + t
        n_img = len(ds.train) + len(ds.test)
        log(f"  {prec}: extracted {n_img} images in {secs[prec]:.0f} s "
            f"({n_img / secs[prec]:.2f} img/s, not interleaved)")
    a32 = np.concatenate([feats["fp32", s][layer] for s in ("train", "test")])
    a16 = np.concatenate([feats["bf16", s][layer] for s in ("train", "test")])
    row_rel = np.linalg.norm(a16 - a32, axis=1) / np.maximum(np.linalg.norm(a32, axis=1), 1e-12)
    elem_rel = float(np.abs(a16 - a32).max() / np.abs(a32).max())
    log(f"  relative difference bf16 vs fp32: per image ||d||/||x|| max {row_rel.max():.2e}, "
        f"median {np.median(row_rel):.2e}; max|d| / max|x| = {elem_rel:.2e}")
    res = {}
    for prec in ("fp32", "bf16"):
        tr, te = feats[prec, "train"], feats[prec, "test"]
        res[prec] = svm_fit_score(tr[layer], tr.labels, te[layer], te.labels, C=1.0,
                                  n_classes=len(ds.classes))
        log(f"  LinearSVC(C=1) accuracy with {prec} features: {res[prec].accuracy:.2%} "
            f"({res[prec].n_correct}/{res[prec].n_test})")
    differ = int((res["fp32"].predictions != res["bf16"].predictions).sum())
    delta = (res["bf16"].accuracy - res["fp32"].accuracy) * 100
    log(f"  accuracy change bf16 - fp32: {delta:+.2f} points; {differ} of {res['fp32'].n_test} "
        f"test predictions differ")
    return dict(value=delta, ok=None,
                text=f"{res['fp32'].accuracy:.1%} -> {res['bf16'].accuracy:.1%} "
                     f"({delta:+.1f} pt, n={res['fp32'].n_test})",
                target="(info)")


if __name__ == "__main__":
    sys.exit(main())
