"""The stand-ins shared by the two halves of the scikit-learn SVC test port
(tests/test_svm_sklearn_port.py and tests/test_svm_sklearn_port_2.py): ``svm`` in place of
``sklearn.svm``, the toy sample and the shuffled iris
set, as scikit-learn's test module defines them (its
``global_random_seed`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from sklearn import datasets
from sklearn.utils import check_random_state

from gridmatch.svm import SVC


class _Svm:
    """Stands in for ``sklearn.svm`` in the ported code."""

    SVC = SVC


svm = _Svm()


# toy sample
X = [[-2, -1], [-1, -1], [-1, -2], [1, 1], [1, 2], [2, 1]]
Y = [1, 1, 1, 2, 2, 2]
T = [[-1, -1], [2, 2], [3, 2]]
true_result = [1, 2, 2]


def get_iris_dataset(random_seed):
    iris = datasets.load_iris()
    rng = check_random_state(random_seed)
    perm = rng.permutation(iris.target.size)
    iris.data = iris.data[perm]
    iris.target = iris.target[perm]
    return iris
