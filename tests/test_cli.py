"""The `lsrec quickstart` command end to end on tiny data."""

from keras_lsrec import cli


def test_quickstart_runs_and_prints_the_table(capsys):
    assert cli.main(["quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    for label in ("| DIN@50 |", "| DIN |", "| TWIN |", "| DARE |", "Bayes-optimal"):
        assert label in out
