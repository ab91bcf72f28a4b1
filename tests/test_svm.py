"""The SVM helpers equal plain scikit-learn, are reproducible, and never peek at the test set."""
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from tplib.errors import TplibError
from tplib.svm import InputError, fit_and_score, l2_normalize, pca_svm, search_C, svm_fit_score


@pytest.fixture(scope="module")
def blobs():
    """1500-dim features with fewer samples than dimensions (the dual-solver case)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 1500))
    y = np.repeat(np.arange(5), 60)
    X = centers[y] * 0.3 + rng.normal(size=(300, 1500))
    idx = rng.permutation(300)
    return X[idx[:200]], y[idx[:200]], X[idx[200:]], y[idx[200:]]


def test_l2_normalize():
    X = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalize(X)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_equals_plain_scikit_learn(blobs):
    Xtr, ytr, Xte, yte = blobs
    res = svm_fit_score(Xtr, ytr, Xte, yte, C=1.0)
    ref = LinearSVC(C=1.0, random_state=0, max_iter=10_000).fit(normalize(Xtr), ytr)
    pred = ref.predict(normalize(Xte))
    np.testing.assert_array_equal(res.predictions, pred)
    assert res.accuracy == pytest.approx(accuracy_score(yte, pred))
    np.testing.assert_array_equal(res.confusion, confusion_matrix(yte, pred))
    np.testing.assert_allclose(res.per_class_accuracy, np.diag(res.confusion) / np.bincount(yte))
    assert res.n_correct == int((pred == yte).sum()) and res.n_test == len(yte)
    assert 0.5 < res.accuracy <= 1.0


def test_reproducible(blobs):
    a = svm_fit_score(*blobs)
    b = svm_fit_score(*blobs)
    np.testing.assert_array_equal(a.model.coef_, b.model.coef_)


def test_C_search_uses_only_training_data(blobs):
    Xtr, ytr, Xte, yte = blobs
    best, scores = search_C(Xtr, ytr, Cs=(0.0001, 1.0), folds=3)
    assert set(scores) == {0.0001, 1.0}
    assert best == 1.0 and scores[1.0] > scores[0.0001]  # very small C collapses
    # deterministic: the same folds and the same solver seed every time
    assert search_C(Xtr, ytr, Cs=(0.0001, 1.0), folds=3) == (best, scores)


def test_pca_pipeline_normalises_like_the_svm_and_is_seeded(blobs):
    Xtr, ytr, Xte, yte = blobs
    res = fit_and_score(pca_svm(20), Xtr, ytr, Xte, yte)
    again = fit_and_score(pca_svm(20), Xtr, ytr, Xte, yte)
    np.testing.assert_array_equal(res.predictions, again.predictions)
    pca = res.model.named_steps["pca"]
    assert pca.n_components_ == 20
    # the same L2 rows as svm_fit_score, then a seeded PCA: plain scikit-learn agrees
    ref_pca = PCA(20, random_state=0).fit(normalize(Xtr))
    np.testing.assert_allclose(np.abs(pca.components_), np.abs(ref_pca.components_), atol=1e-6)
    ref = LinearSVC(C=1.0, random_state=0, max_iter=10_000).fit(ref_pca.transform(normalize(Xtr)), ytr)
    np.testing.assert_array_equal(res.predictions, ref.predict(ref_pca.transform(normalize(Xte))))


def test_C_search_result_is_typed(blobs):
    Xtr, ytr, _, _ = blobs
    found = search_C(Xtr, ytr, Cs=(0.1, 1.0), folds=3)
    assert found.best_C in (0.1, 1.0) and list(found.scores) == [0.1, 1.0]
    with pytest.raises(InputError, match="at least 5 training images per class"):
        search_C(Xtr[:8], ytr[:8], folds=5)


@pytest.mark.parametrize("case,needle", [
    ("lengths", "X_train has 200 rows but y_train has shape (199,)"),
    ("nan", "X_test has 1 row(s) with NaN or inf"),
    ("inf", "X_train has 1 row(s) with NaN or inf"),
    ("one_class", "y_train holds one class only"),
    ("empty_test", "X_test is empty"),
    ("dims", "X_train has 1500 features per row, X_test 1499"),
    ("C", "C must be a finite number > 0"),
    ("negative", "y_train holds negative labels (-1)"),
])
def test_bad_inputs_name_the_argument(blobs, case, needle):
    Xtr, ytr, Xte, yte = (np.array(a, copy=True) for a in blobs)
    kwargs = {}
    if case == "lengths":
        ytr = ytr[:-1]
    elif case == "nan":
        Xte[3, 7] = np.nan
    elif case == "inf":
        Xtr[0, 0] = np.inf
    elif case == "negative":
        ytr[5] = -1
    elif case == "one_class":
        ytr[:] = 2
    elif case == "empty_test":
        Xte, yte = Xte[:0], yte[:0]
    elif case == "dims":
        Xte = Xte[:, :-1]
    elif case == "C":
        kwargs["C"] = float("nan")
    with pytest.raises(TplibError) as err:
        svm_fit_score(Xtr, ytr, Xte, yte, **kwargs)
    assert needle in str(err.value)


def test_labels_beyond_n_classes_pca_too_wide_and_bad_searches_are_named(blobs):
    Xtr, ytr, Xte, yte = blobs
    with pytest.raises(InputError, match="labels go up to 4 but n_classes=2"):
        svm_fit_score(Xtr, ytr, Xte, yte, n_classes=2)
    with pytest.raises(InputError, match="use at most 10 components"):
        fit_and_score(pca_svm(500), Xtr[:, :10], ytr, Xte[:, :10], yte)
    with pytest.raises(InputError, match="Cs is empty"):
        search_C(Xtr, ytr, [])
    with pytest.raises(InputError, match="one class only"):
        search_C(Xtr, np.zeros_like(ytr), [1.0])


def test_a_features_object_is_not_a_matrix(blobs):
    from tplib.features import Features

    Xtr, ytr, Xte, yte = blobs
    feats = Features(arrays={"relu7": Xtr}, labels=ytr, paths=[""] * len(ytr))
    with pytest.raises(InputError, match=r"X_train is a Features object .*train\[layer\]"):
        svm_fit_score(feats, ytr, Xte, yte)


@pytest.mark.parametrize("C", ["1", True, b"1", np.True_])
def test_C_that_only_looks_like_a_number_is_refused(blobs, C):
    from tplib.errors import OptionError

    Xtr, ytr, Xte, yte = blobs
    with pytest.raises(OptionError, match="C must be a number > 0"):
        svm_fit_score(Xtr, ytr, Xte, yte, C=C)


def test_numpy_integers_are_whole_numbers(blobs):
    Xtr, ytr, Xte, yte = blobs
    n = np.int64(8)  # e.g. from np.arange or a shape
    assert fit_and_score(pca_svm(n), Xtr, ytr, Xte, yte).accuracy == \
        fit_and_score(pca_svm(8), Xtr, ytr, Xte, yte).accuracy
    with pytest.raises(InputError, match="whole number"):
        pca_svm(True)


def test_C_is_bounded_to_what_liblinear_can_solve(blobs):
    """C of about 1e140 and more (or 1e-190 and less) never returns from liblinear's
    primal solver: refused in one line, before any fit; the bounds themselves fit."""
    from tplib.errors import OptionError
    from tplib.svm import C_MAX, C_MIN, check_C, make_svm

    Xtr, ytr, Xte, yte = blobs
    for C in (1e150, 1e-200, C_MAX * 1.01, C_MIN / 1.01):
        with pytest.raises(OptionError, match=r"outside what LinearSVC can solve: use a C from 1e-10 "
                                              r"to 1e\+10"):
            make_svm(C)
    with pytest.raises(OptionError, match="outside what LinearSVC can solve"):
        search_C(Xtr, ytr, [1.0, 1e150], folds=2)
    assert check_C(C_MAX) == 1e10 and check_C(np.float32(0.5)) == 0.5
    rows = Xtr[:150, :20]  # more images than features: the primal solver
    for C in (C_MIN, C_MAX):
        res = svm_fit_score(rows, ytr[:150], Xte[:, :20], yte, C=C)
        assert 0.0 <= res.accuracy <= 1.0 and res.model.C == C


@pytest.mark.parametrize("folds", [1, 0, 2.5, True, "3", None])
def test_folds_that_are_not_a_count_of_two_or_more_are_refused_before_scikit_learn(blobs, folds):
    from tplib.errors import OptionError

    Xtr, ytr, _, _ = blobs
    with pytest.raises(OptionError, match=rf"^folds must be a whole number >= 2, not {folds!r}$"):
        search_C(Xtr, ytr, [1.0], folds=folds)


def test_one_C_is_a_search_of_one_value(blobs):
    Xtr, ytr, _, _ = blobs
    one = search_C(Xtr, ytr, 0.1, folds=3)
    assert one.best_C == 0.1 and list(one.scores) == [0.1]
    assert one == search_C(Xtr, ytr, [0.1], folds=3) == search_C(Xtr, ytr, np.float64(0.1), folds=3)
    assert search_C(Xtr, ytr, [0.1, 1.0], folds=3).scores[0.1] == one.scores[0.1]
    from tplib.errors import OptionError

    with pytest.raises(OptionError, match="Cs must be a list of C values"):
        search_C(Xtr, ytr, "0.1", folds=3)


@pytest.mark.parametrize("shape", [(4,), (), (2, 2, 2)])
def test_l2_normalize_wants_a_matrix(shape):
    with pytest.raises(InputError, match=r"l2_normalize needs an \(n_images, n_features\) matrix"):
        l2_normalize(np.ones(shape))
    if shape == (4,):
        np.testing.assert_allclose(l2_normalize(np.ones(shape).reshape(1, -1)), [[0.5] * 4])
