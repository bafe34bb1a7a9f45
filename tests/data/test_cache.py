"""`prepare`'s cache: it never deletes what it did not write, writes atomically per call,
rebuilds damaged entries and keys on the loader's identity."""

import errno
import functools
import glob
import json
import os
import re
import stat
import threading
from typing import Any

import keras
import numpy as np
import pytest

from keras_lsrec.data import SequenceDataset, dare_protocol, load_taobao, prepare
from keras_lsrec.data.cache import MARKER

LOADS: list[dict[str, Any]] = []  # the calls of the loaders below that reached the file


def counting_load(path, **kwargs):
    LOADS.append(kwargs)
    return load_taobao(path, progress=False, **kwargs)


def other_load(path, **kwargs):
    LOADS.append(kwargs)
    return load_taobao(path, progress=False, **kwargs)


PROTOCOL = {"min_events": 210, "batch_size": 64, "seed": 1}


@pytest.fixture
def source(tmp_path, make_events):
    """A small UserBehavior.csv (3 long users)."""
    LOADS.clear()
    path = tmp_path / "data" / "UserBehavior.csv"
    path.parent.mkdir()
    columns = ["user", "item", "category", "behavior", "timestamp"]
    make_events(num_users=3).assign(behavior="pv")[columns].to_csv(path, header=False, index=False)
    return str(path)


def entries(cache):
    return sorted(n for n in os.listdir(cache) if n[0] != "." and os.path.isdir(os.path.join(cache, n)))


def assert_same_splits(a, b):
    assert list(a) == list(b)
    for split in a:
        for x, y in zip(a[split].arrays(), b[split].arrays(), strict=True):
            keras.tree.map_structure(np.testing.assert_array_equal, x, y)


def test_a_directory_prepare_did_not_create_is_refused_not_cleared(source, tmp_path, monkeypatch):
    """Before: a stale manifest in the folder of the source file made prepare `rmtree` that folder,
    source included. Now a non-empty folder without prepare's marker is refused, untouched."""
    folder = os.path.dirname(source)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"format": 1, "loader": "load_taobao"}, f)  # an old cache's manifest, not matching
    before = sorted(os.listdir(folder))
    with pytest.raises(ValueError, match=r"`cache_dir=.*data'` is not empty and was not created by"):
        prepare(source, counting_load, dare_protocol, folder, protocol_args=PROTOCOL)
    assert sorted(os.listdir(folder)) == before and os.path.getsize(source) > 0 and not LOADS
    monkeypatch.chdir(folder)  # "." is refused the same way
    with pytest.raises(ValueError, match=r"`cache_dir='\.'` is not empty.*UserBehavior\.csv.*older"):
        prepare("UserBehavior.csv", counting_load, dare_protocol, ".", protocol_args=PROTOCOL)
    assert sorted(os.listdir(folder)) == before
    with pytest.raises(ValueError, match="is a file, not a directory"):
        prepare(source, counting_load, dare_protocol, source, protocol_args=PROTOCOL)


def test_prepare_caches_marks_and_deletes_only_its_own_files(source, tmp_path):
    cache = str(tmp_path / "cache")
    first = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert os.path.isfile(os.path.join(cache, MARKER)) and len(entries(cache)) == 1
    (entry,) = entries(cache)
    assert sorted(os.listdir(os.path.join(cache, entry))) == [
        "manifest.json",
        "sequences",
        "test",
        "train",
        "validation",
    ]
    second = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert len(LOADS) == 1 and isinstance(second["train"].examples["label"], np.memmap)
    assert_same_splits(first, second)
    # The user's own files in the cache folder, even inside an entry, survive every rebuild.
    notes = os.path.join(cache, "notes.txt")
    inside = os.path.join(cache, entry, "train", "my_file.npy")
    for name in (notes, inside):
        with open(name, "w") as f:
            f.write("mine")
    prepare(source, counting_load, dare_protocol, cache, protocol_args={**PROTOCOL, "seed": 2})
    assert len(LOADS) == 2 and len(entries(cache)) == 2  # another argument: another entry
    with open(source, "a") as f:
        f.write("99,1,1,pv,5\n")
    with pytest.warns(UserWarning, match=r"left .* in place: it holds files prepare did not write"):
        prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert len(LOADS) == 3  # a changed file rebuilds; its superseded entry goes, except the user's file
    assert os.path.isfile(notes) and os.path.isfile(inside)
    assert os.listdir(os.path.join(cache, entry)) == ["train"]
    assert os.listdir(os.path.join(cache, entry, "train")) == ["my_file.npy"]
    assert not [n for n in os.listdir(cache) if n.startswith((".staging", ".trash"))]


def test_concurrent_calls_write_their_own_staging_folders(source, tmp_path, monkeypatch):
    """Before: every call staged in `<cache_dir>.partial`, so two calls deleted each other's files.
    Here both calls are held inside `save` until both have started writing."""
    cache = str(tmp_path / "cache")
    barrier = threading.Barrier(2, timeout=120)
    original = SequenceDataset.save
    waited = set()

    def save(self, directory, sequences_dir=None):
        original(self, directory, sequences_dir)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()

    monkeypatch.setattr(SequenceDataset, "save", save)
    results, errors = {}, []

    def run(name):
        try:
            results[name] = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert_same_splits(results["a"], results["b"])
    assert len(entries(cache)) == 1 and not [n for n in os.listdir(cache) if n.startswith(".staging")]
    monkeypatch.setattr(SequenceDataset, "save", original)
    again = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert_same_splits(again, results["a"])
    assert len(LOADS) == 2


def test_a_damaged_entry_is_rebuilt(source, tmp_path):
    cache = str(tmp_path / "cache")
    reference = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    (labels,) = glob.glob(os.path.join(cache, "**", "train", "example_label.npy"), recursive=True)
    entry = os.path.relpath(labels, cache).split(os.sep)[0]
    with open(labels, "r+b") as f:
        f.truncate(os.path.getsize(labels) - 8)  # an interrupted copy
    with pytest.warns(UserWarning, match=r"damaged \(train/example_label\.npy has \d+ bytes, the manifest"):
        rebuilt = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert len(LOADS) == 2
    assert_same_splits(rebuilt, reference)
    again = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert_same_splits(again, reference)
    assert len(LOADS) == 2 and entries(cache) == [entry]
    # A changed byte keeps the size: `verify=True` compares checksums.
    with open(labels, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x7f")
    with pytest.warns(UserWarning, match="does not match its SHA-256"):
        prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL, verify=True)
    assert len(LOADS) == 3
    with open(os.path.join(cache, entry, "manifest.json"), "w") as f:
        f.write("{not json")
    with pytest.warns(UserWarning, match="damaged"):
        prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    assert len(LOADS) == 4 and entries(cache) == [entry]


def make_loader(behaviors):
    def load(path):  # every loader made here has the qualified name `make_loader.<locals>.load`
        LOADS.append(behaviors)
        return load_taobao(path, behaviors=behaviors, progress=False)

    return load


def test_the_key_is_the_loader_identity_and_arguments(source, tmp_path):
    """Before: the key was `load.__name__`, so two loaders of one name shared a stale cache."""
    cache = str(tmp_path / "cache")

    def run(load, **kwargs):
        count = len(LOADS)
        prepare(source, load, dare_protocol, cache, protocol_args=PROTOCOL, **kwargs)
        return len(LOADS) > count  # the loader ran: the cache was not used

    assert run(make_loader(["pv"])) and not run(make_loader(["pv"]))
    assert run(make_loader(["pv", "buy"]))  # same name, another closure: not the same loader
    assert run(counting_load) and run(other_load) and not run(counting_load)
    assert run(functools.partial(counting_load, behaviors=["pv"]))
    assert not run(functools.partial(counting_load, behaviors=("pv",)))
    assert run(counting_load, load_args={"behaviors": ["pv"]})
    first = lambda path: counting_load(path)  # noqa: E731
    second = lambda path: counting_load(path, behaviors=["pv"])  # noqa: E731
    assert first.__qualname__ == second.__qualname__
    assert run(first) and run(second) and not run(first)

    class Loader:
        def __call__(self, path):
            return counting_load(path)

    with pytest.raises(TypeError, match=r"`load` must be a function or a functools.partial.*Loader"):
        prepare(source, Loader(), dare_protocol, cache)
    with pytest.raises(TypeError, match=r"`load_args\['behaviors'\]` cannot be recorded.*object"):
        prepare(source, counting_load, dare_protocol, cache, load_args={"behaviors": object()})


def refuse_writes_under(monkeypatch, folder):
    """Makes `folder` unwritable for this process: `chmod` does not stop root, who may run the tests."""
    folder = os.path.abspath(folder)
    mkdir = os.mkdir

    def refusing_mkdir(path, *args, **kwargs):
        if os.path.abspath(path).startswith(folder):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refusing_mkdir)


def test_an_unwritable_cache_directory_fails_before_the_loader_runs(source, tmp_path, monkeypatch):
    """Before: prepare ran the loader and the protocol in full, then raised PermissionError and
    discarded the splits. Now it fails at once, naming the directory; a built entry is still read."""
    cache = str(tmp_path / "cache")
    built = prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL)
    refuse_writes_under(monkeypatch, cache)
    assert_same_splits(prepare(source, counting_load, dare_protocol, cache, protocol_args=PROTOCOL), built)
    assert len(LOADS) == 1
    with pytest.raises(
        PermissionError, match=rf"`cache_dir={re.escape(repr(cache))}` is not writable \(Permission"
    ):
        prepare(source, counting_load, dare_protocol, cache, protocol_args={**PROTOCOL, "seed": 2})
    assert len(LOADS) == 1  # the loader never ran
    assert len(entries(cache)) == 1 and [n for n in os.listdir(cache) if n.startswith(".")] == [MARKER]
    missing = str(tmp_path / "locked" / "cache")  # a new directory that cannot be created
    refuse_writes_under(monkeypatch, tmp_path / "locked")
    with pytest.raises(PermissionError, match=rf"`cache_dir={re.escape(repr(missing))}` is not writable"):
        prepare(source, counting_load, dare_protocol, missing, protocol_args=PROTOCOL)
    assert len(LOADS) == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes a read-only directory")
def test_a_read_only_cache_directory_fails_before_the_loader_runs(source, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / MARKER).write_text("")
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            prepare(source, counting_load, dare_protocol, str(cache), protocol_args=PROTOCOL)
    finally:
        cache.chmod(stat.S_IRWXU)
    assert not LOADS
