"""The KuaiRand reader and dlrm_v3's candidate windows, on generated files in KuaiRand's layout."""

import gzip

import numpy as np
import pandas as pd
import pytest

from keras_lsrec.data import candidate_windows, load_kuairand
from keras_lsrec.data.readers.kuairand import ACTION_BITS, HEADER

DAY = 86_400_000
FLAGS = list(ACTION_BITS)


def log_rows(seed=0, users=(40, 7, 1000, 3), events=(14, 3, 9, 6)):
    """A log table with every published column; rows in a shuffled order, raw ids sparse."""
    rng = np.random.default_rng(seed)
    parts = []
    for user, n in zip(users, events, strict=True):
        time = 1_649_400_000_000 + np.sort(rng.choice(3 * DAY, n, replace=False))
        part = {
            "user_id": np.full(n, user),
            "video_id": rng.choice([5, 17, 230, 4_000_000, 88, 9], n),
            "date": 20220408,
            "hourmin": 1600,
            "time_ms": time,
        }
        part.update({flag: rng.integers(0, 2, n) for flag in FLAGS})
        part.update(
            play_time_ms=rng.integers(0, 90_000, n),
            duration_ms=rng.integers(1_000, 90_000, n),
            profile_stay_time=0,
            comment_stay_time=0,
            is_rand=0,
            tab=rng.integers(0, 4, n),
        )
        parts.append(pd.DataFrame(part))
    table = pd.concat(parts, ignore_index=True)[list(HEADER)]
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def sorted_rows(**kwargs):
    """`log_rows` in the order of the published files (by user, then time)."""
    return log_rows(**kwargs).sort_values(["user_id", "time_ms"], ignore_index=True)


def write_log(path, table, header=True, compress=False):
    text = table.to_csv(index=False, header=header)
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return str(path)


def direct(table):
    """An independent reading: ranks of the raw ids, the bitmask, a stable sort on (user, time)."""
    users = np.unique(table["user_id"], return_inverse=True)[1] + 1
    items = np.unique(table["video_id"], return_inverse=True)[1] + 1
    action = sum(table[flag].to_numpy() * bit for flag, bit in ACTION_BITS.items())
    order = np.lexsort((table["time_ms"].to_numpy(), users))
    return pd.DataFrame(
        {
            "user": users[order],
            "item": items[order],
            "action": action[order],
            "timestamp": table["time_ms"].to_numpy()[order],
            "play_time_ms": table["play_time_ms"].to_numpy()[order],
            "duration_ms": table["duration_ms"].to_numpy()[order],
        }
    )


def same_events(frame, table):
    expected = direct(table)
    assert list(frame.columns) == list(expected.columns)
    for column in expected:
        np.testing.assert_array_equal(frame[column].to_numpy(), expected[column].to_numpy(), err_msg=column)


@pytest.mark.filterwarnings("ignore:.*out of time order")
def test_load_kuairand_against_a_direct_reading(tmp_path):
    table = log_rows()
    path = write_log(tmp_path / "log_standard_4_08_to_4_21_1k.csv", table)
    with pytest.warns(UserWarning, match="out of time order"):  # the rows are shuffled: re-sorted
        events = load_kuairand(path, progress=False)
    assert events.attrs["report"].unsorted > 0
    same_events(events, table)
    assert events["action"].dtype == np.int16 and events["timestamp"].dtype == np.int64
    assert list(events.attrs["vocabularies"]["user"]) == [3, 7, 40, 1000]
    assert list(events.attrs["vocabularies"]["item"]) == [5, 9, 17, 88, 230, 4_000_000]
    assert events.attrs["report"].rows == len(table) and not events.attrs["report"].rejected
    # Chunks of two lines, a file without its header, a gzip file: the same table.
    pd.testing.assert_frame_equal(load_kuairand(path, chunk_rows=2, progress=False), events)
    bare = write_log(tmp_path / "bare.csv", table, header=False)
    pd.testing.assert_frame_equal(load_kuairand(bare, progress=False), events)
    packed = write_log(tmp_path / "log.csv.gz", table, compress=True)
    pd.testing.assert_frame_equal(load_kuairand(packed, progress=False), events)
    # dlrm_v3 joins the two standard logs: a list of files is read as one table.
    first = write_log(tmp_path / "a.csv", table.iloc[:15])
    second = write_log(tmp_path / "b.csv", table.iloc[15:])
    joined = load_kuairand([first, second], progress=False)
    pd.testing.assert_frame_equal(joined, events)
    assert joined.attrs["source"] == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]


def test_action_bitmask_has_one_bit_per_flag(tmp_path):
    table = log_rows(users=(1,), events=(len(FLAGS) + 1,))
    table = table.sort_values("time_ms", ignore_index=True)
    table[FLAGS] = 0
    for row, flag in enumerate(FLAGS):  # row i: flag i alone; the last row: every flag
        table.loc[row, flag] = 1
    table.loc[len(FLAGS), FLAGS] = 1
    events = load_kuairand(write_log(tmp_path / "log.csv", table), progress=False)
    assert events["action"].tolist() == [1, 2, 4, 8, 16, 32, 64, 128, 255]
    assert [ACTION_BITS[f] for f in ("is_click", "long_view", "is_profile_enter")] == [1, 64, 128]


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda line: line.replace(",0,0,0,0,0,0,0,", ",0,2,0,0,0,0,0,", 1), "is_like: not 0 or 1"),
        (lambda line: line.rsplit(",", 1)[0], "tab: missing or empty"),
        (lambda line: line.replace("1649400000000", "16494e", 1), "timestamp: not an integer"),
    ],
)
def test_malformed_rows_raise_or_are_skipped(tmp_path, edit, reason):
    good = log_rows(users=(1, 2), events=(2, 2)).sort_values(["user_id", "time_ms"], ignore_index=True)
    good[FLAGS] = 0
    bad = good.iloc[:1].copy()
    bad["time_ms"] = 1649400000000
    bad_line = edit(bad.to_csv(index=False, header=False).strip())
    text = good.to_csv(index=False)
    lines = text.strip().split("\n")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines[:2] + [bad_line] + lines[2:]) + "\n")  # the bad row on line 3
    with pytest.raises(ValueError, match=rf"{reason}.* at lines \[3\]"):
        load_kuairand(str(path), progress=False)
    with pytest.warns(UserWarning, match="rejected"):
        events = load_kuairand(str(path), errors="skip", progress=False)
    assert events.attrs["report"].rejected_count == 1 and list(events.attrs["report"].rejected.values()) == [
        [3]
    ]
    same_events(events, good)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(path="missing.csv"), "No such file"),
        (dict(path=[]), "`path` must be"),
        (dict(chunk_rows=0), "`chunk_rows` must be an integer >= 1. Received: `chunk_rows=0`"),
        (dict(errors="ignore"), "`errors` must be 'raise' or 'skip'. Received: `errors='ignore'`"),
        (dict(progress="no"), "`progress` must be True or False"),
    ],
)
def test_loader_arguments_are_checked_before_reading(tmp_path, kwargs, message):
    path = tmp_path / "log.csv"
    path.write_text("this,is,not,kuairand\n")  # reading it would fail otherwise
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_kuairand(kwargs.pop("path", str(path)), **kwargs)


def expected_requests(events, num_candidates, max_len, window_ms):
    """Every request by a direct loop: (user, history left-padded, candidates, labels, time of the
    last candidate, the history's actions left-padded)."""
    out = []
    for user, group in events.groupby("user", sort=True):
        items, actions, times = (group[c].to_numpy() for c in ("item", "action", "timestamp"))
        windows = np.zeros(len(times)) if window_ms is None else times // window_ms
        for window in np.unique(windows):
            inside = np.flatnonzero(windows == window)
            end = inside[-1] + 1 - num_candidates
            if len(inside) < num_candidates or end < 1:
                continue
            history = items[max(0, end - max_len) : end]
            padded = np.concatenate([np.zeros(max_len - len(history), int), history])
            done = actions[max(0, end - max_len) : end]
            labels = (actions[end : end + num_candidates] & 1) > 0
            out.append(
                (
                    user,
                    padded,
                    items[end : end + num_candidates],
                    labels,
                    times[end + num_candidates - 1],
                    np.concatenate([np.zeros(max_len - len(done), int), done]),
                )
            )
    return out


def all_requests(splits):
    rows = []
    for name in ("train", "validation", "test"):
        x, y = splits[name].arrays()
        for i in range(len(y)):
            user = int(splits[name].users[i]) + 1
            rows.append((name, user, x["history_item"][i], x["target_item"][i], y[i], x["history_action"][i]))
    return rows


@pytest.mark.parametrize("window_ms", [None, DAY])
def test_candidate_windows_against_a_direct_construction(tmp_path, window_ms):
    events = load_kuairand(write_log(tmp_path / "log.csv", sorted_rows()), progress=False)
    C, L = 3, 4
    splits = candidate_windows(
        events, num_candidates=C, max_len=L, window_ms=window_ms, fractions=(0.5, 0.25)
    )
    expected = expected_requests(events, C, L, window_ms)
    got = all_requests(splits)  # the splits hold users in id order, each user's requests in time order
    assert len(got) == len(expected) > 0
    assert 2 not in {r[1] for r in got}  # the user with 3 events has no history before its last 3
    by_user = {}
    for (name, user, history, targets, labels, actions), (
        user_,
        history_,
        targets_,
        labels_,
        _,
        actions_,
    ) in zip(got, expected, strict=True):
        assert user == user_
        np.testing.assert_array_equal(history, history_)
        np.testing.assert_array_equal(actions, actions_)  # the history's only: never a candidate's
        np.testing.assert_array_equal(targets, targets_)
        np.testing.assert_array_equal(labels, labels_.astype("float32"))
        by_user.setdefault(user, set()).add(name)
    # dlrm_v3's split: users with a request, in id order; the first half train, a quarter validation.
    owners = sorted(by_user)
    cut = [round(0.5 * len(owners)), round(0.75 * len(owners))]
    names = ["train"] * cut[0] + ["validation"] * (cut[1] - cut[0]) + ["test"] * (len(owners) - cut[1])
    assert [by_user[u] for u in owners] == [{n} for n in names]
    schema = splits["train"].schema
    assert schema.candidates == C and schema.max_len == L and schema.has_time and schema.actions == 8
    x, y = splits["train"][0]
    assert "target_action" not in x  # a candidate's action is its label
    assert "history_action" not in candidate_windows(events, num_candidates=C, actions=False)["train"][0][0]
    assert x["target_item"].shape == y.shape == (len(y), C)
    assert x["history_time"][0].tolist() == [(L - i) * (h != 0) for i, h in enumerate(x["history_item"][0])]


def test_windows_shorter_than_the_candidates_and_the_time_split(tmp_path):
    table = sorted_rows(users=(1, 2), events=(9, 4))
    start = table["time_ms"].min()
    first = table["user_id"] == 1
    # user 1: 2 events on day 0, 7 on day 1; user 2: 4 events on day 2.
    times = np.sort(table.loc[first, "time_ms"].to_numpy() - start) % DAY
    table.loc[first, "time_ms"] = np.sort(times) + np.repeat([0, DAY], [2, 7])
    table.loc[~first, "time_ms"] = np.sort(table.loc[~first, "time_ms"].to_numpy() - start) % DAY + 2 * DAY
    table = table.sort_values(["user_id", "time_ms"], ignore_index=True)
    events = load_kuairand(write_log(tmp_path / "log.csv", table), progress=False)
    splits = candidate_windows(
        events, num_candidates=3, max_len=5, window_ms=DAY, split="time", fractions=(0.5, 0.0)
    )
    # User 1's day 0 has 2 events (< 3): no request; its day 1 one; user 2's day 2 one (1 event of
    # history). By time: user 1's request trains, user 2's tests.
    assert [s.num_examples for s in splits.values()] == [1, 0, 1]
    x, y = splits["train"].arrays()
    assert x["target_item"][0].tolist() == events["item"].to_numpy()[6:9].tolist()
    assert (x["history_item"][0] != 0).sum() == 5  # both windows of user 1 before its candidates
    with pytest.raises(ValueError, match="No request"):
        candidate_windows(events, num_candidates=8, window_ms=DAY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_candidates=0), "`num_candidates` must be a positive integer. Received: `num_candidates=0`"),
        (dict(window_ms=0), "`window_ms` must be None or a positive integer"),
        (dict(label="click"), "`label` must be one of"),
        (dict(split="random"), "`split` must be one of"),
        (dict(fractions=(0.9, 0.2)), "`fractions` must be"),
        (dict(max_len=-1), "`max_len` must be a positive integer"),
        (dict(actions=1), "`actions` must be True or False"),
    ],
)
def test_candidate_windows_arguments(kwargs, message):
    events = pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": [0, 1], "action": [1, 0]})
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        candidate_windows(events, **kwargs)
    with pytest.raises(ValueError, match="lacks column"):
        candidate_windows(events.drop(columns="action"))
    with pytest.raises(ValueError, match=r"`events\['action'\]` holds 256 at row 1 \(index 1\)"):
        candidate_windows(events.assign(action=[1, 256]), num_candidates=1)
    with pytest.raises(ValueError, match=r"`events\['action'\]` must hold integer bitmasks"):
        candidate_windows(events.assign(action=[1.0, 0.5]), num_candidates=1)


def test_hstu_trains_on_the_requests(tmp_path):
    import keras

    from keras_lsrec.models import HSTU

    events = load_kuairand(write_log(tmp_path / "log.csv", sorted_rows()), progress=False)
    splits = candidate_windows(events, num_candidates=2, max_len=6, batch_size=4, fractions=(0.75, 0.0))
    model = HSTU(splits["train"].schema, embedding_dim=4, key_dim=4, mlp_units=(8,))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(splits["train"], epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    scores = model.predict(splits["test"], verbose=0)
    assert scores.shape == (splits["test"].num_examples, 2)
    assert np.isfinite(keras.ops.convert_to_numpy(scores)).all()


def test_candidate_sets_save_and_load_sharing_their_sequences(tmp_path):
    from keras_lsrec.data import SequenceDataset

    events = load_kuairand(write_log(tmp_path / "log.csv", sorted_rows()), progress=False)
    splits = candidate_windows(events, num_candidates=2, max_len=6, batch_size=4, fractions=(0.5, 0.25))
    assert splits["train"].event_actions is splits["test"].event_actions  # one copy for the splits
    for name, split in splits.items():
        split.save(str(tmp_path / name), sequences_dir=str(tmp_path / "events"))
    for name, split in splits.items():
        loaded = SequenceDataset.load(str(tmp_path / name))
        assert type(loaded) is type(split) and loaded.schema == split.schema
        assert loaded.schema.candidates == 2 and loaded.schema.actions == 8
        (x, y), (x_, y_) = split.arrays(), loaded.arrays()
        assert x.keys() == x_.keys()
        for key in x:
            np.testing.assert_array_equal(x_[key], x[key], err_msg=key)
        np.testing.assert_array_equal(y_, y)
    assert len(list((tmp_path / "events").glob("event_labels.npy"))) == 1  # stored once for the splits
