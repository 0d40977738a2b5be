"""Model files: SVC save/load/pickle and GridSearchNetwork folders.

Round trips are bit-identical; truncated, tampered (changed bytes, wrong shapes, wrong
dtypes, missing or extra arrays, bad JSON) and wrong-version files raise
``gridmatch.DataError``; a save that fails mid-way leaves the previous file intact and
no temporary file behind. The safetensors files are also read and written here by an
independent few-line implementation of the format, to craft tampered files.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gridmatch as gm
from gridmatch import _core
from gridmatch.exceptions import DataError
from gridmatch.svm import SVC

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5))
Y3 = RNG.integers(0, 3, 40)
Y2 = (X[:, 0] > 0).astype(int)


# ----------------------------------------------------- an independent safetensors codec
def st_read(raw: bytes) -> tuple[dict, bytes]:
    """(header dict, data bytes) of a safetensors file."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def st_write(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict | None) -> bytes:
    """A safetensors file of ``name -> (dtype, shape, bytes)`` (dtype as in the spec)."""
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset, blobs = 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_tensors(raw: bytes) -> dict[str, tuple[str, list[int], bytes]]:
    header, data = st_read(raw)
    return {
        k: (v["dtype"], v["shape"], data[v["data_offsets"][0] : v["data_offsets"][1]])
        for k, v in header.items()
        if k != "__metadata__"
    }


# -------------------------------------------------------------------------- SVC
KERNELS = ["rbf", "linear", "poly", "sigmoid", gm.expr.PAPER_KERNEL, "expr-object"]


def fit(kernel, y=Y3, **kw) -> SVC:
    if kernel == "expr-object":
        kernel = gm.expr.parse("norm1(tanh(x * y)) + dot(x, y)")
    return SVC(kernel=kernel, **kw).fit(X, y)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("y", [Y2, Y3], ids=["binary", "3 classes"])
def test_svc_save_load_is_bit_identical(tmp_path, kernel, y):
    m = fit(kernel, y, class_weight={0: 2.0}, C=3.0)
    path = m.save(tmp_path / "svc.safetensors")
    back = SVC.load(path)
    np.testing.assert_array_equal(back.decision_function(X), m.decision_function(X))
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    assert back.get_params() == m.get_params()
    assert sorted(vars(back)) == sorted(vars(m))
    for name in ("support_", "support_vectors_", "dual_coef_", "intercept_", "classes_"):
        a, b = getattr(back, name), getattr(m, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["svc.safetensors"]  # no temp file left


def test_svc_file_is_plain_safetensors_with_json_config(tmp_path):
    m = fit(gm.expr.PAPER_KERNEL)
    raw = Path(m.save(tmp_path / "m.safetensors")).read_bytes()
    header, _ = st_read(raw)
    config = json.loads(header["__metadata__"]["gridmatch"])
    assert config["format"] == "gridmatch.svm.SVC" and config["version"] == 1
    assert config["kernel"]["text"] == str(gm.expr.parse(gm.expr.PAPER_KERNEL))
    assert len(header["__metadata__"]["gridmatch.sha256"]) == 64
    tensors = st_tensors(raw)
    dual = np.frombuffer(tensors["dual_coef"][2], dtype="<f8").reshape(tensors["dual_coef"][1])
    np.testing.assert_array_equal(dual, m.dual_coef_)
    assert b"pickle" not in raw and b"\x80\x04" not in raw[:2]


def test_svc_precomputed_and_string_labels(tmp_path):
    G = X @ X.T
    m = SVC(kernel="precomputed").fit(G, Y3)
    back = SVC.load(m.save(tmp_path / "p.safetensors"))
    np.testing.assert_array_equal(back.decision_function(G), m.decision_function(G))
    labels = np.array(["coat", "bag", "shoe"])[Y3]
    m = SVC().fit(X, labels)
    back = SVC.load(m.save(tmp_path / "s.safetensors"))
    assert back.classes_.dtype == m.classes_.dtype
    np.testing.assert_array_equal(back.predict(X), m.predict(X))


def test_svc_pickle_uses_the_safetensors_bytes():
    m = fit(gm.expr.PAPER_KERNEL)
    state = m.__getstate__()
    assert set(state) == {"_gridmatch_svc", "_sklearn_version"}
    arrays, meta = _core.store_loads(state["_gridmatch_svc"])  # verifies the checksum
    assert json.loads(meta["gridmatch"])["format"] == "gridmatch.svm.SVC"
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.decision_function(X), m.decision_function(X))
    # an unfitted estimator pickles its parameters
    assert pickle.loads(pickle.dumps(SVC(C=2.0))).C == 2.0
    # a corrupted pickled model is refused by the same validation as files
    bad = bytearray(state["_gridmatch_svc"])
    bad[-1] ^= 1
    with pytest.raises(DataError, match="checksum"):
        SVC().__setstate__({"_gridmatch_svc": bytes(bad)})


def _kernel_fn(a, b):
    return a @ b.T


def test_svc_callable_kernel_cannot_be_saved_but_pickles(tmp_path):
    m = SVC(kernel=_kernel_fn).fit(X, Y3)
    with pytest.raises(TypeError, match="cannot be saved.*pickle"):
        m.save(tmp_path / "c.safetensors")
    back = pickle.loads(pickle.dumps(m))  # plain scikit-learn pickling
    np.testing.assert_array_equal(back.decision_function(X), m.decision_function(X))
    with pytest.raises(gm.NotFittedError):
        SVC().save(tmp_path / "u.safetensors")


@pytest.fixture(scope="module")
def svc_file(tmp_path_factory):
    m = fit(gm.expr.PAPER_KERNEL)
    path = m.save(tmp_path_factory.mktemp("svc") / "m.safetensors")
    return Path(path).read_bytes()


def _load_bytes(tmp_path, raw: bytes):
    p = tmp_path / "t.safetensors"
    p.write_bytes(raw)
    return SVC.load(p)


@pytest.mark.parametrize("cut", [0, 4, 8, 9, 64, -100, -1])
def test_svc_truncated_files_are_data_errors(tmp_path, svc_file, cut):
    with pytest.raises(DataError, match="not a valid safetensors|checksum"):
        _load_bytes(tmp_path, svc_file[:cut])


def test_svc_every_changed_byte_is_detected(tmp_path, svc_file):
    # every 7th byte (header and data), flipped by one bit
    for i in range(0, len(svc_file), 7):
        raw = bytearray(svc_file)
        raw[i] ^= 0x04
        with pytest.raises(DataError):
            _load_bytes(tmp_path, bytes(raw))


def _resave(tmp_path, svc_file, edit_arrays=None, edit_config=None, raw_meta=None):
    """A re-checksummed file (so only the structural checks can catch the change)."""
    arrays, meta = _core.store_loads(svc_file)
    arrays = {n: (d, list(s), bytes(b)) for n, d, s, b in arrays}
    if edit_arrays:
        edit_arrays(arrays)
    config = json.loads(meta["gridmatch"])
    if edit_config:
        edit_config(config)
    meta = {"gridmatch": raw_meta if raw_meta is not None else json.dumps(config)}
    p = tmp_path / "t.safetensors"
    _core.store_save(str(p), [(n, *v) for n, v in arrays.items()], meta)
    return p


def _f64(a):
    return ("f64", list(a.shape), np.ascontiguousarray(a, "<f8").tobytes())


TAMPERED = {
    "wrong version": (None, lambda c: c.update(version=2), r"format version 2 is not supported"),
    "no version": (None, lambda c: c.pop("version"), r"format version None"),
    "wrong format": (None, lambda c: c.update(format="sklearn"), r"not a saved gridmatch SVC"),
    "missing array": (lambda a: a.pop("dual_coef"), None, r"missing \['dual_coef'\]"),
    "extra array": (lambda a: a.update(evil=_f64(np.ones(1))), None, r"unexpected \['evil'\]"),
    "wrong dtype": (
        lambda a: a.update(
            dual_coef=("f32", a["dual_coef"][1], b"\0" * (len(a["dual_coef"][2]) // 2))
        ),
        None,
        r"dual_coef.*f32.*expected f64",
    ),
    "wrong shape": (
        lambda a: a.update(dual_coef=_f64(np.zeros((1, 3)))),
        None,
        r"dual_coef has the wrong shape",
    ),
    "wrong ndim": (lambda a: a.update(intercept=_f64(np.zeros((3, 1)))), None, r"intercept.*2-D"),
    "nan coefficients": (
        lambda a: a.update(intercept=_f64(np.full(3, np.nan))),
        None,
        r"intercept holds NaN",
    ),
    "support out of range": (
        lambda a: a.update(
            support=("i32", a["support"][1], np.full(a["support"][1], 10**6, "<i4").tobytes())
        ),
        None,
        r"support indices out of range",
    ),
    "missing config key": (None, lambda c: c.pop("classes"), r"invalid model config \(KeyError"),
    "bad parameter": (None, lambda c: c["params"].update(C=-1), r"C must be > 0, got -1"),
    "unknown parameter": (None, lambda c: c["params"].update(evil=1), r"invalid model config"),
    "bad expression": (
        None,
        lambda c: c["kernel"].update(text="norm1(sin(", param=None),
        r"invalid model config",
    ),
    "classes count": (None, lambda c: c.update(classes=[0, 1]), r"n_support does not match"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_svc_tampered_but_rechecksummed_files_are_data_errors(tmp_path, svc_file, name):
    edit_arrays, edit_config, match = TAMPERED[name]
    p = _resave(tmp_path, svc_file, edit_arrays, edit_config)
    with pytest.raises(DataError, match=match):
        SVC.load(p)


def test_svc_bad_json_and_foreign_files_are_data_errors(tmp_path, svc_file):
    with pytest.raises(DataError, match="not valid JSON"):
        SVC.load(_resave(tmp_path, svc_file, raw_meta="{not json"))
    # a safetensors file from elsewhere (no gridmatch checksum)
    foreign = st_write({"w": ("F32", [1], b"\0\0\0\0")}, {"format": "pt"})
    with pytest.raises(DataError, match="no gridmatch checksum"):
        _load_bytes(tmp_path, foreign)
    with pytest.raises(DataError, match="cannot read"):
        SVC.load(tmp_path / "missing.safetensors")
    # a header whose length field claims more than the file holds
    with pytest.raises(DataError, match="not a valid safetensors"):
        _load_bytes(tmp_path, struct.pack("<Q", 2**40) + b"{}")


# ------------------------------------------------------------ interrupted saves
FAIL_SAVE = """
import resource, signal, sys
import numpy as np
import gridmatch as gm
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG, not a kill
X = np.random.default_rng(1).normal(size=(300, 40))
y = (X[:, 0] > 0).astype(int)
{make}
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))  # the disk is "full" at 2 KiB
try:
    model.save(sys.argv[1])
except gm.DataError as e:
    print("DataError:", e)
    sys.exit(3)
sys.exit(0)
"""


def _run_failing_save(path: Path, make: str) -> subprocess.CompletedProcess:
    code = FAIL_SAVE.format(make=textwrap.dedent(make))
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )


def test_svc_failed_save_leaves_the_previous_file(tmp_path):
    old = SVC(kernel="linear").fit(X[:10], Y2[:10])
    path = Path(old.save(tmp_path / "m.safetensors"))
    before = path.read_bytes()
    assert len(before) < 2048
    r = _run_failing_save(path, "model = gm.svm.SVC().fit(X, y)")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "cannot write" in r.stdout
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    np.testing.assert_array_equal(SVC.load(path).decision_function(X), old.decision_function(X))
    with pytest.raises(DataError, match="cannot write"):
        old.save(tmp_path / "no" / "such" / "folder" / "m.safetensors")


# --------------------------------------------------------------------- GSN folder
FAST = dict(dim=8, batch_size=8, steps_per_epoch=2, epochs=1, progress=False, grid=(2, 2))
IMG = RNG.integers(0, 256, size=(16, 28, 28), dtype=np.uint8)
IDS = np.arange(16) // 2


@pytest.fixture(scope="module")
def gsn_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gsn") / "model"
    gsn = gm.GridSearchNetwork(**FAST).fit(IMG, IDS)
    gsn.save(d)
    return d, gsn.embed(IMG[:4])


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("weights.safetensors", "config.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_gsn_folder_round_trip_and_checksum(tmp_path, gsn_dir):
    src, E = gsn_dir
    config = json.loads((src / "config.json").read_text())
    assert config["version"] == 1 and len(config["weights_sha256"]) == 64
    back = gm.GridSearchNetwork.load(_copy(src, tmp_path / "m"))
    np.testing.assert_array_equal(back.embed(IMG[:4]), E)


def _edit_config(d: Path, edit) -> None:
    c = json.loads((d / "config.json").read_text())
    edit(c)
    (d / "config.json").write_text(json.dumps(c))


def _rehash(d: Path) -> None:
    import hashlib

    digest = hashlib.sha256((d / "weights.safetensors").read_bytes()).hexdigest()
    _edit_config(d, lambda c: c.update(weights_sha256=digest))


def _edit_weights(d: Path, edit) -> None:
    """Rewrite weights.safetensors with ``edit(tensors)`` applied, then fix the checksum."""
    tensors = st_tensors((d / "weights.safetensors").read_bytes())
    edit(tensors)
    (d / "weights.safetensors").write_bytes(st_write(tensors, None))
    _rehash(d)


def _first(t: dict) -> str:
    return sorted(t)[0]


def _to_f64(t: dict) -> None:
    name = _first(t)
    _, shape, data = t[name]
    t[name] = ("F64", shape, np.frombuffer(data, "<f4").astype("<f8").tobytes())


def _reshape(t: dict) -> None:
    name = _first(t)
    _, _, data = t[name]
    t[name] = ("F32", [1], data[:4])  # broadcastable: must not be accepted


GSN_TAMPERED = {
    "changed weight byte": (
        lambda d: (d / "weights.safetensors").write_bytes(
            (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:])(
                (d / "weights.safetensors").read_bytes()
            )
        ),
        r"does not match the checksum",
    ),
    "truncated weights": (
        lambda d: (d / "weights.safetensors").write_bytes(
            (d / "weights.safetensors").read_bytes()[:100]
        ),
        r"does not match the checksum",
    ),
    "truncated weights, rehashed": (
        lambda d: (
            (d / "weights.safetensors").write_bytes((d / "weights.safetensors").read_bytes()[:100]),
            _rehash(d),
        ),
        r"not a valid safetensors file",
    ),
    "missing weights": (lambda d: (d / "weights.safetensors").unlink(), r"cannot read"),
    "bad json": (lambda d: (d / "config.json").write_text("{oops"), r"cannot read"),
    "wrong version": (lambda d: _edit_config(d, lambda c: c.update(version=7)), r"version 7"),
    "wrong format": (
        lambda d: _edit_config(d, lambda c: c.update(format="x")),
        r"not a saved GridSearchNetwork",
    ),
    "no checksum": (
        lambda d: _edit_config(d, lambda c: c.pop("weights_sha256")),
        r"no weights_sha256",
    ),
    "missing params": (
        lambda d: _edit_config(d, lambda c: c.pop("params")),
        r"invalid model config",
    ),
    "bad param": (
        lambda d: _edit_config(d, lambda c: c["params"].update(dim=0)),
        r"dim must be a positive integer, got 0",
    ),
    "other dim": (
        lambda d: _edit_config(d, lambda c: c["params"].update(dim=16)),
        r"the network has",
    ),
    "bad n_channels": (
        lambda d: _edit_config(d, lambda c: c.update(n_channels=5)),
        r"n_channels must be 1 or 3",
    ),
    "wrong dtype": (lambda d: _edit_weights(d, _to_f64), r"Double.*the network has Float"),
    "wrong shape": (lambda d: _edit_weights(d, _reshape), r"\[1\] in the file"),
    "missing tensor": (lambda d: _edit_weights(d, lambda t: t.pop(_first(t))), r"is missing"),
    "extra tensor": (
        lambda d: _edit_weights(d, lambda t: t.update(evil=("F32", [1], b"\0" * 4))),
        r'"evil" is not a variable',
    ),
}


@pytest.mark.parametrize("name", list(GSN_TAMPERED))
def test_gsn_tampered_folders_are_data_errors(tmp_path, gsn_dir, name):
    d = _copy(gsn_dir[0], tmp_path / "m")
    tamper, match = GSN_TAMPERED[name]
    tamper(d)
    with pytest.raises(DataError, match=match):
        gm.GridSearchNetwork.load(d)


def test_gsn_training_checkpoints_carry_the_checksum(tmp_path):
    gsn = gm.GridSearchNetwork(checkpoint_dir=tmp_path / "ckpt", **FAST).fit(IMG, IDS)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert len(config["weights_sha256"]) == 64
    back = gm.GridSearchNetwork.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(back.embed(IMG[:3]), gsn.embed(IMG[:3]))


def test_gsn_failed_save_leaves_the_previous_folder(tmp_path, gsn_dir):
    d = _copy(gsn_dir[0], tmp_path / "m")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    r = _run_failing_save(
        d,
        """
        imgs = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
        model = gm.GridSearchNetwork(dim=64, epochs=0, progress=False).fit(imgs, np.arange(16) // 2)
        """,
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing new, nothing left
    np.testing.assert_array_equal(gm.GridSearchNetwork.load(d).embed(IMG[:4]), gsn_dir[1])


# ----------------------------------------------------------------- SearchResult


def test_gsn_pickle_and_deepcopy_carry_the_saved_files(gsn_dir):
    import copy

    gsn = gm.GridSearchNetwork.load(gsn_dir[0])
    state = gsn.__getstate__()
    assert "model_" not in state
    assert set(state["_gridmatch_gsn"]) == {"config.json", "weights.safetensors"}
    for back in (pickle.loads(pickle.dumps(gsn)), copy.deepcopy(gsn)):
        np.testing.assert_array_equal(back.embed(IMG[:4]), gsn_dir[1])
        assert back.get_params() == gsn.get_params() and back.history_ == gsn.history_
    assert pickle.loads(pickle.dumps(gm.GridSearchNetwork(dim=7))).dim == 7
    bad = dict(state)
    bad["_gridmatch_gsn"] = {**state["_gridmatch_gsn"], "weights.safetensors": b"\0" * 64}
    with pytest.raises(DataError, match="checksum"):
        gm.GridSearchNetwork().__setstate__(bad)


# ------------------------------------------------- SVC probability model (issue 18)


@pytest.mark.parametrize("y", [Y2, Y3], ids=["binary", "3 classes"])
@pytest.mark.parametrize("kernel", ["rbf", gm.expr.PAPER_KERNEL])
def test_svc_probability_model_round_trips(tmp_path, kernel, y):
    m = fit(kernel, y, probability=True, random_state=3)
    back = SVC.load(m.save(tmp_path / "p.safetensors"))
    assert back.probability and back.random_state == 3
    np.testing.assert_array_equal(back.probA_, m.probA_)
    np.testing.assert_array_equal(back.probB_, m.probB_)
    np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
    assert sorted(vars(back)) == sorted(vars(m))
    clone = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(clone.predict_proba(X), m.predict_proba(X))
    tensors = st_tensors(Path(tmp_path / "p.safetensors").read_bytes())
    assert tensors["prob_a"][1] == [len(m.intercept_)]


def test_svc_files_written_before_probabilities_still_load(tmp_path, svc_file):
    # A file of the earlier writer: no prob arrays, no probability/random_state params.
    def old_config(c):
        c["params"].pop("probability")
        c["params"].pop("random_state")

    p = _resave(tmp_path, svc_file, edit_config=old_config)
    arrays, _ = _core.store_load(str(p))
    assert not {"prob_a", "prob_b"} & {a[0] for a in arrays}
    back = SVC.load(p)
    assert back.probability is False and back.probA_.shape == (0,)
    np.testing.assert_array_equal(back.predict(X), fit(gm.expr.PAPER_KERNEL).predict(X))
    assert not hasattr(back, "predict_proba")


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda a: a.update(prob_a=_f64(np.zeros(3))), r"missing \['prob_b'\]"),
        (
            lambda a: a.update(prob_a=_f64(np.zeros(2)), prob_b=_f64(np.zeros(2))),
            r"prob_a / prob_b have the wrong shape",
        ),
        (
            lambda a: a.update(prob_a=_f64(np.full(3, np.nan)), prob_b=_f64(np.zeros(3))),
            r"prob_a holds NaN",
        ),
    ],
)
def test_svc_tampered_probability_arrays_are_data_errors(tmp_path, svc_file, edit, match):
    p = _resave(tmp_path, svc_file, edit_arrays=edit)
    with pytest.raises(DataError, match=match):
        SVC.load(p)


def test_svc_with_a_generator_random_state_saves_and_pickles(tmp_path):
    rs = np.random.RandomState(0)
    m = fit("rbf", probability=True, random_state=rs)
    back = SVC.load(m.save(tmp_path / "g.safetensors"))  # stored as None: no JSON form
    assert back.random_state is None
    np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
    clone = pickle.loads(pickle.dumps(m))  # the ordinary pickle state keeps the object
    assert isinstance(clone.random_state, np.random.RandomState)
    np.testing.assert_array_equal(clone.predict_proba(X), m.predict_proba(X))
