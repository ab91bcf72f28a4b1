"""Command line: ``tplib run | predict | layers | fetch | cache`` (also ``python -m tplib``).

Errors that tplib raises on purpose print their message, without a traceback, and
exit with status 2; Ctrl-C exits with 130 and keeps what was already extracted.
"""
from __future__ import annotations

import argparse
import sys

from .errors import TplibError

EPILOG = "Caches: TPLIB_CACHE (data, features), TORCH_HOME (weights). See README.md."


def _add_run(sub) -> None:
    from .features import POOLINGS, PRECISIONS
    from .models import MODEL_NAMES

    p = sub.add_parser("run", help="the whole lab headless: 15 Scene, features, LinearSVC, report",
                       description="Extract features of 15 Scene (or --data DIR) with a pretrained "
                       "network, fit LinearSVC on train, report test accuracy.", epilog=EPILOG)
    p.add_argument("--data", help="folder with train/ and test/ class sub-folders, or the course "
                   "zip (default: cache, else download, else a generated stand-in)")
    p.add_argument("--out", help="report folder (default ./reports/run-YYYYmmdd-HHMMSS)")
    p.add_argument("--model", default="vgg16", choices=MODEL_NAMES)
    p.add_argument("--weights", default="imagenet", choices=("imagenet", "random"),
                   help="random: the same network untrained, to measure what pretraining brings")
    p.add_argument("--layer", help="relu1_1 .. relu7, pool1 .. pool5, fc6, fc7 (VGG16); pooled, "
                   "head, block1..7 (EfficientNet-Lite); or a module name (default: relu7 / pooled)")
    p.add_argument("--pool", default="none", choices=POOLINGS,
                   help="pooling of convolutional maps (default none: the whole map)")
    p.add_argument("--C", type=float, default=1.0, help="LinearSVC's C (default 1)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default 16: the fastest "
                   "measured on a 2-core CPU; 8 lowers peak memory further)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    p.add_argument("--threads", type=int, default=None,
                   help="image-decoding threads beside the forward pass (default: 0 on a CPU "
                        "whose cores all run the network, else 2)")
    p.add_argument("--quick", action="store_true",
                   help="5 train + 5 test images per class: a one-minute classroom demo")
    p.add_argument("--strict", action="store_true",
                   help="stop instead of using another network, random weights or generated data")
    p.add_argument("--offline", action="store_true", help="never try to download")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_run(args) -> int:
    from .lab import LabOptions, run_lab
    from .report import format_console_summary

    if args.batch_size is not None and args.batch_size < 1:
        raise TplibError("--batch-size must be at least 1")
    opts = LabOptions(data=args.data, out=args.out, model=args.model, weights=args.weights,
                      layer=args.layer, pool=args.pool, C=args.C, batch_size=args.batch_size,
                      device=args.device, precision=args.precision, quick=args.quick,
                      strict=args.strict, download=not args.offline, cache=not args.no_cache,
                      threads=args.threads, progress=not args.no_progress)
    result = run_lab(opts)
    print(format_console_summary(result, summary_path=result["report"]["summary"]))
    print(f"Report: {result['report']['summary']}")
    return 0


def cmd_predict(args) -> int:
    from .models import best_available_backbone, load_backbone
    from .predict import predict_files

    backbone = (best_available_backbone(download=not args.offline) if args.model == "auto"
                else load_backbone(args.model, download=not args.offline))
    print(f"network: {backbone.describe()}")
    for note in backbone.notes:
        print(f"  note: {note}")
    for path, top in predict_files(backbone, args.files, k=args.top):
        print(f"\n{path}")
        if isinstance(top, str):
            print(f"  skipped: {top}")
            continue
        for name, prob in top:
            print(f"  {prob:6.1%}  {name}")
    return 0


def cmd_layers(args) -> int:
    from .models import load_backbone
    from .predict import layer_table

    backbone = load_backbone(args.model, weights="random")
    print(f"{'layer':<10} {'module':<15} output shape")
    for name, node, shape in layer_table(backbone):
        print(f"{name:<10} {node:<15} {shape}")
    return 0


def cmd_fetch(args) -> int:
    from .download import RESOURCES, fetch, safe_extract_zip
    from .paths import data_cache_dir, torch_checkpoint_dir

    names = list(RESOURCES) if args.what == "all" else [args.what]
    for name in names:
        res = RESOURCES[name]
        dest = torch_checkpoint_dir() if name == "vgg16" else data_cache_dir()
        path = fetch(res, dest, progress=True)
        if name == "15scene":
            safe_extract_zip(path, dest)
        print(f"{name}: {path} (verified)")
    return 0


def cmd_cache(args) -> int:
    from .cache import cache_info, clear_cache
    from .paths import feature_cache_dir

    if args.action == "clear":
        print(f"freed {clear_cache() / 1e6:.1f} MB in {feature_cache_dir()}")
        return 0
    entries = cache_info()
    print(f"feature cache: {feature_cache_dir()} ({len(entries)} entries)")
    for e in entries:
        print(f"  {e['bytes'] / 1e6:9.1f} MB  {e['state']:<8}  {e['name']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models import MODEL_NAMES

    parser = argparse.ArgumentParser(prog="tplib", description="Transfer-learning lab toolkit.",
                                     epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    p = sub.add_parser("predict", help="top-k ImageNet classes of image files")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default="auto", choices=("auto", *MODEL_NAMES),
                   help="auto: VGG16 if its weights are cached, else the best installed real network")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--offline", action="store_true", help="never try to download")
    p = sub.add_parser("layers", help="friendly layer names, module names and output shapes")
    p.add_argument("--model", default="vgg16", choices=MODEL_NAMES)
    p = sub.add_parser("fetch", help="download and verify the 15 Scene zip and/or VGG16 weights")
    p.add_argument("what", choices=("15scene", "vgg16", "all"))
    p = sub.add_parser("cache", help="show or clear the feature cache")
    p.add_argument("action", nargs="?", default="info", choices=("info", "clear"))
    return parser


COMMANDS = {"run": cmd_run, "predict": cmd_predict, "layers": cmd_layers,
            "fetch": cmd_fetch, "cache": cmd_cache}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TplibError as exc:
        print(f"tplib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ntplib: interrupted. Features extracted so far are kept; the next run resumes.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
