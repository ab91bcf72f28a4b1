"""tplib: the helper library of the transfer-learning lab.

The main calls, in the order of the lab::

    lab = tplib.setup(data="15scene")      # profile, seeds, device, network, data: printed
    backbone, data = lab.backbone, lab.dataset
    layer = backbone.default_layer           # "relu7" for VGG16
    train = tplib.extract_features(backbone, data.train, layer)   # cached, batched
    test = tplib.extract_features(backbone, data.test, layer)
    result = tplib.svm_fit_score(train[layer], train.labels, test[layer], test.labels)

Plots live in :mod:`tplib.viz`, fine-tuning in :mod:`tplib.finetune`, the headless
run in :mod:`tplib.lab` (``tplib run`` on the command line). Importing tplib is cheap:
each name below is imported on first use (torch loads with the first network).
"""

import importlib as _importlib

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "setup": "session", "Session": "session",
    "find_dataset": "datasets", "KNOWN_DATASETS": "catalog",
    "load_dataset": "data", "Dataset": "data", "Split": "data",
    "load_backbone": "models", "resolve_backbone": "models", "build_model": "models",
    "Backbone": "models", "weights_available": "models",
    "NETWORKS": "registry", "NETWORK_NAMES": "registry",
    "extract_features": "features", "activations": "features", "Features": "features",
    "Engine": "engine",
    "get_profile": "profile", "PROFILES": "profile",
    "svm_fit_score": "svm", "search_C": "svm", "pca_svm": "svm", "l2_normalize": "svm",
    "fit_and_score": "svm", "most_confused": "svm",
    "predict_topk": "predict", "layer_table": "predict", "count_parameters": "predict",
    "run_lab": "lab", "LabOptions": "lab", "LabResult": "lab",
    "sample_photos": "samples",
    "Preprocess": "preprocess",
    "TplibError": "errors",
}
_SUBMODULES = {"cache", "catalog", "checks", "data", "datasets", "defaults", "download",
               "engine", "errors", "experiments", "extraction", "features", "finetune", "fusion",
               "going_further", "images", "lab", "models", "patches", "paths", "predict",
               "preprocess", "profile", "registry", "report", "samples", "session", "svm",
               "synthetic", "viz", "widgets"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tplib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
