"""The `lsrec quickstart` command end to end on tiny data."""

import json
import logging
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from test_case import only_under

from keras_lsrec import cli


@only_under("torch", why="the table's rows; the CLI trains on every backend below")
def test_quickstart_runs_and_prints_the_table(capsys):
    assert cli.main(["quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    for label in ("| DIN@50 |", "| DIN |", "| TWIN |", "| DARE |", "| TWIN-V2 |", "Bayes-optimal"):
        assert label in out


def test_quickstart_json_record_and_init_seed(tmp_path):
    def run(init_seed, *extra):
        path = tmp_path / f"{init_seed}.json"
        argv = ["quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64", "--models", "din@50"]
        assert cli.main(argv + ["--init-seed", str(init_seed), "--json", str(path), *extra]) == 0
        return json.loads(path.read_text())

    first, again, other = run(1), run(1), run(2)
    assert first["init_seed"] == 1 and first["seed"] == 0 and list(first["models"]) == ["DIN@50"]
    assert set(first["models"]["DIN@50"]) == {"auc", "gauc", "logloss", "samples_per_s"}
    assert first["models"]["DIN@50"]["auc"] == again["models"]["DIN@50"]["auc"]  # same seeds, same run
    assert first["models"]["DIN@50"]["auc"] != other["models"]["DIN@50"]["auc"]  # other initial weights
    assert first["bayes_auc"] == other["bayes_auc"]  # ... on the same data
    # --same-start: the first run saves its initial weights, the next loads them.
    start = tmp_path / "start"
    saved = run(1, "--same-start", str(start))
    assert (start / "din_50.weights.h5").exists()
    loaded = run(1, "--same-start", str(start))
    assert (
        saved["models"]["DIN@50"]["auc"]
        == loaded["models"]["DIN@50"]["auc"]
        == first["models"]["DIN@50"]["auc"]
    )


# --- bad sizes are refused by argparse, naming the option -----------------------------------------


@pytest.mark.parametrize(
    "argv, option, requirement",
    [
        (["quickstart", "--users", "0"], "--users", "a positive integer"),
        (["quickstart", "--users", "-5"], "--users", "a positive integer"),
        (["quickstart", "--users", "ten"], "--users", "a positive integer"),
        (["quickstart", "--epochs", "0"], "--epochs", "a positive integer"),
        (["quickstart", "--max-len", "0"], "--max-len", "an integer >= 80 (the synthetic histories"),
        (["quickstart", "--max-len", "10"], "--max-len", "an integer >= 80 (the synthetic histories"),
        (["quickstart", "--batch-size", "0"], "--batch-size", "a positive integer"),
        (["quickstart", "--learning-rate", "0"], "--learning-rate", "a positive finite number"),
        (["quickstart", "--learning-rate", "-0.01"], "--learning-rate", "a positive finite number"),
        (["quickstart", "--learning-rate", "nan"], "--learning-rate", "a positive finite number"),
        (["quickstart", "--seed", "-1"], "--seed", "a non-negative integer"),
        (["quickstart", "--init-seed", "-1"], "--init-seed", "a non-negative integer"),
        (["export", "model.keras", "--version", "0"], "--version", "a positive integer"),
    ],
)
def test_non_positive_sizes_are_refused_naming_the_option(argv, option, requirement, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be {requirement}" in err and f"Received: '{argv[-1]}'" in err, err


# --- export without the serving extra --------------------------------------------------------------


def test_export_without_tensorflow_serving_api_says_what_to_install(tmp_path, capsys, monkeypatch):
    from keras_lsrec.data import SequenceSchema
    from keras_lsrec.models import DIN

    schema = SequenceSchema(vocab_sizes={"item": 20, "category": 5}, max_len=10)
    model_file = str(tmp_path / "din.keras")
    DIN(schema, embedding_dim=4, attention_units=(4,), mlp_units=(4,)).save(model_file)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # as if not installed
    assert cli.main(["export", model_file, "--base-dir", str(tmp_path / "saved_models" / "din")]) == 1
    err = capsys.readouterr().err
    assert "tensorflow-serving-api" in err and 'pip install "keras-lsrec[serving]"' in err
    assert not os.path.exists(tmp_path / "saved_models")


# --- quiet unless --verbose ------------------------------------------------------------------------


def run_quietly(*argv):
    """`python -m keras_lsrec.cli ARGV` as a user runs it: the package, so keras and tensorflow, is
    imported before cli.py runs, and the user has not set TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    env["KERAS_BACKEND"] = keras.backend.backend()
    return subprocess.run(
        [sys.executable, "-m", "keras_lsrec.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_quickstart_prints_no_tensorflow_logs_or_retracing_warnings():
    # On every backend, from the first line (the cuInit error, oneDNN and CPU-feature notices included).
    proc = run_quietly(
        "quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64", "--models", "din@50,din"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| DIN@50 |" in proc.stdout and "| DIN |" in proc.stdout
    assert proc.stderr == "", proc.stderr[-3000:]


def test_configure_logging_drops_retracing_warnings_unless_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli.configure_logging(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    logger = logging.getLogger("tensorflow")
    level, filters = logger.level, list(logger.filters)
    try:
        with warnings.catch_warnings():
            cli.configure_logging(verbose=False)
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
            retracing = logger.makeRecord(
                "tensorflow",
                logging.WARNING,
                __file__,
                1,
                "5 out of the last 5 calls to <function f> triggered tf.function retracing.",
                None,
                None,
            )
            error = logger.makeRecord("tensorflow", logging.ERROR, __file__, 1, "a real error", None, None)
            assert not logger.filter(retracing) and logger.filter(error)
            assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    finally:
        logger.setLevel(level)
        logger.filters[:] = filters


def test_verbose_is_accepted_before_and_after_the_command(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "configure_logging", seen.append)
    monkeypatch.setattr(cli, "quickstart", lambda args: 0)
    for argv in (["quickstart"], ["--verbose", "quickstart"], ["quickstart", "--verbose"]):
        assert cli.main(argv) == 0
    assert seen == [False, True, True]


LSREC = os.path.join(os.path.dirname(sys.executable), "lsrec")


@pytest.mark.parametrize("how", ["module", "script"])
def test_lsrec_help_is_quiet(how):
    """From the first import on, on every backend: `import keras_lsrec` turns TensorFlow's start-up
    lines off before it imports keras when the process is `lsrec` (keras_lsrec/_quiet.py)."""
    if how == "script" and not os.path.exists(LSREC):
        pytest.skip("the `lsrec` console script is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    env["KERAS_BACKEND"] = keras.backend.backend()
    # `--help` exits while parsing, before any subcommand imports: the start-up is the same for each
    # (a subcommand's through the module; the console script's own start-up once).
    for argv in [["--help"], ["export", "--help"]][: 2 if how == "module" else 1]:
        command = [sys.executable, "-m", "keras_lsrec.cli", *argv] if how == "module" else [LSREC, *argv]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "usage: lsrec" in proc.stdout, proc.stderr[-3000:]
        assert proc.stderr == "", proc.stderr[-3000:]


def test_the_quiet_start_applies_to_the_lsrec_command_only(monkeypatch):
    from keras_lsrec import _quiet

    cases = [
        (["/venv/bin/lsrec", "quickstart"], [], ["quickstart"]),
        (["C:\\venv\\Scripts\\lsrec.exe", "--help"], [], ["--help"]),
        (
            ["-m", "export", "x.keras"],
            ["python", "-m", "keras_lsrec.cli", "export", "x.keras"],
            ["export", "x.keras"],
        ),
        (["-m", "x"], ["python", "-m", "keras_lsrec.serving._tf_export", "x"], None),  # another module
        (["train.py", "--verbose"], ["python", "train.py", "--verbose"], None),  # a user's script
        (["-c"], ["python", "-c", "import keras_lsrec"], None),
    ]
    for argv, original, expected in cases:
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(sys, "orig_argv", original, raising=False)
        assert _quiet.command_arguments() == expected, argv
    assert _quiet.asks_verbose(["quickstart", "--verbose"]) and _quiet.asks_verbose(["--verb", "quickstart"])
    assert not _quiet.asks_verbose(["export", "m.keras", "--version", "2"])
    assert not _quiet.asks_verbose(["quickstart", "--", "--verbose"])


# --- lsrec export: one line naming the culprit, nothing left behind --------------------------------


def small_model_file(tmp_path):
    from keras_lsrec.data import SequenceSchema
    from keras_lsrec.models import DIN

    schema = SequenceSchema(vocab_sizes={"item": 20, "category": 5}, max_len=10)
    model_file = tmp_path / "din.keras"
    DIN(schema, embedding_dim=4, attention_units=(4,), mlp_units=(4,)).save(str(model_file))
    return model_file


@pytest.mark.parametrize("case", ["directory", "python file", "missing"])
def test_export_of_what_is_not_a_keras_file_is_an_argument_error(case, tmp_path, capsys):
    pytest.importorskip("tensorflow_serving")
    path = {"directory": tmp_path, "python file": tmp_path / "model.py", "missing": tmp_path / "m.keras"}[
        case
    ]
    if case == "python file":
        path.write_text("print('a script')\n")
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(path), "--base-dir", str(tmp_path / "saved_models" / "m")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"lsrec export: error: argument model_file: {path}" in err and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "saved_models")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_export_of_a_broken_keras_file_is_one_line_and_leaves_nothing(damage, tmp_path, capsys):
    pytest.importorskip("tensorflow_serving")
    good = small_model_file(tmp_path)
    path = tmp_path / "broken.keras"
    path.write_bytes(good.read_bytes()[:500] if damage == "truncated" else b"not a model\n" * 50)
    assert cli.main(["export", str(path), "--base-dir", str(tmp_path / "saved_models" / "broken")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"lsrec export: error: {path} is not a valid .keras file ({path.stat().st_size} bytes): "
        "not a zip archive (truncated, or another format)"
    ], lines
    assert not os.path.exists(tmp_path / "saved_models")


def test_export_to_an_existing_version_is_one_line(tmp_path, capsys):
    pytest.importorskip("tensorflow_serving")
    model_file = small_model_file(tmp_path)
    base = tmp_path / "saved_models" / "din"
    (base / "1").mkdir(parents=True)
    assert cli.main(["export", str(model_file), "--base-dir", str(base), "--version", "1"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"lsrec export: error: Version 1 already exists: {base / '1'}"], lines
    assert os.listdir(base) == ["1"]


def test_export_item_tables_that_do_not_fit_are_one_line(tmp_path, capsys):
    """`--item-tables`: an unreadable file, or a table the model has no item feature for, is one
    line naming it; nothing is written."""
    pytest.importorskip("tensorflow_serving")
    model_file = small_model_file(tmp_path)
    base = tmp_path / "saved_models" / "din"
    broken = tmp_path / "tables.npz"
    broken.write_text("not a zip")
    assert cli.main(["export", str(model_file), "--base-dir", str(base), "--item-tables", str(broken)]) == 1
    assert capsys.readouterr().err.startswith(f"lsrec export: error: --item-tables {broken}: not a readable")
    np.savez(tmp_path / "other.npz", image_emb=np.zeros((3, 2), "float32"))
    args = ["export", str(model_file), "--base-dir", str(base), "--item-tables", str(tmp_path / "other.npz")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image_emb" in err[0], err
    assert not os.path.exists(base)
