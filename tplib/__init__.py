"""tplib: the helper library of the transfer-learning lab.

The main calls, in the order of the lab::

    backbone = tplib.best_available_backbone()      # VGG16, or a real offline substitute
    data = tplib.load_dataset("15SceneData")          # train/test splits of any image folder
    feats = tplib.extract_features(backbone, data.train, "relu7")   # cached, batched
    result = tplib.svm_fit_score(Xtr, ytr, Xte, yte, C=1.0)          # L2 + LinearSVC

Plots live in :mod:`tplib.viz`, fine-tuning in :mod:`tplib.finetune`, the headless
run in :mod:`tplib.lab` (``tplib run`` on the command line).
"""
from .data import Dataset, Split, load_dataset, scene15_root
from .features import Features, activations, extract_features
from .lab import LabOptions, run_lab
from .models import Backbone, VGG16relu7, best_available_backbone, load_backbone
from .predict import count_parameters, layer_table, predict_topk
from .preprocess import Preprocess
from .samples import sample_photos
from .svm import l2_normalize, pca_svm, search_C, svm_fit_score

__all__ = [
    "Backbone", "Dataset", "Features", "LabOptions", "Preprocess", "Split", "VGG16relu7",
    "activations", "best_available_backbone", "count_parameters", "extract_features",
    "l2_normalize", "layer_table", "load_backbone", "load_dataset", "pca_svm",
    "predict_topk", "run_lab", "sample_photos", "scene15_root", "search_C", "svm_fit_score",
]
