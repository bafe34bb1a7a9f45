"""Readers keep 64-bit ids exact (never through a float64), and `encode_ids` maps them back exactly."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_lsrec.data import encode_ids, load_amazon, load_movielens, load_taobao, load_tmall

# Two ids a float64 merges, and the edges of int64 / uint64.
IDS = [2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]


def write(path, text):
    path.write_text(text)
    return str(path)


def originals(frame, field):
    """The original id of every event, through the vocabulary."""
    vocabulary = frame.attrs["vocabularies"][field]
    return [int(vocabulary[i - 1]) for i in frame[field]]


def assert_exact(frame, field, expected):
    """`expected`: the original ids of the events, in the frame's order."""
    vocabulary = frame.attrs["vocabularies"][field]
    assert [int(v) for v in vocabulary] == sorted(set(expected))  # one entry per distinct id, in order
    assert originals(frame, field) == expected
    # encode_ids maps the original ids back exactly, given as Python ints, numpy integers or text.
    new_ids = frame[field].tolist()
    assert encode_ids(vocabulary, expected).tolist() == new_ids
    assert encode_ids(vocabulary, [str(i) for i in expected]).tolist() == new_ids
    if max(expected) < 2**64 and min(expected) >= 0:
        assert encode_ids(vocabulary, np.array(expected, dtype="uint64")).tolist() == new_ids
    unseen = [i for i in (2**53 + 2, 2**64, -(2**63) - 1, 2**64 + 7) if i not in expected]
    assert encode_ids(vocabulary, unseen).tolist() == [len(vocabulary) + 1] * len(unseen)  # OOV


def test_taobao_ids_near_2_53_and_2_63_stay_distinct_and_exact(tmp_path):
    triples = zip(IDS, IDS[::-1], IDS, strict=True)
    lines = [f"{u},{i},{c},pv,{1511544000 + n}\n" for n, (u, i, c) in enumerate(triples)]
    path = write(tmp_path / "UserBehavior.csv", "".join(lines))
    events = load_taobao(path, progress=False)
    assert len(events) == 5 and events["user"].nunique() == events["item"].nunique() == 5
    assert_exact(events, "user", IDS)  # sorted by user: the file's order
    assert_exact(events, "item", IDS[::-1])
    assert_exact(events, "category", IDS)
    # The same table whatever the chunking (each line parsed alone, or all together).
    pd.testing.assert_frame_equal(load_taobao(path, chunk_rows=1, progress=False), events)
    pd.testing.assert_frame_equal(load_taobao(path, chunk_rows=2, progress=False), events)


def test_ids_beyond_uint64_or_mixed_with_negative_ones_stay_exact(tmp_path):
    ids = [-(2**63), -1, 2**53 + 1, 2**64 - 1, 2**64, 10**30]
    lines = [f"{u},{u},7,pv,{100 + n}\n" for n, u in enumerate(ids)]
    path = write(tmp_path / "UserBehavior.csv", "".join(lines))
    events = load_taobao(path, progress=False)
    assert_exact(events, "user", ids)
    assert_exact(events, "item", ids)
    pd.testing.assert_frame_equal(load_taobao(path, chunk_rows=1, progress=False), events)


def test_decimal_notation_is_exact_or_rejected(tmp_path):
    """`5.0` is the integer 5; a decimal a float64 cannot hold exactly is not merged with its neighbour."""
    path = write(
        tmp_path / "UserBehavior.csv",
        "5.0,9007199254740993,1,pv,10\n5,9007199254740992,1,pv,11\n6,9007199254740993.0,1,pv,12\n",
    )
    with pytest.raises(ValueError, match=r"item: not an integer\) at lines \[3\]"):
        load_taobao(path, progress=False)
    for chunk_rows in (1, 3):
        with pytest.warns(UserWarning, match="rejected"):
            events = load_taobao(path, errors="skip", chunk_rows=chunk_rows, progress=False)
        assert originals(events, "user") == [5, 5] and originals(events, "item") == [2**53 + 1, 2**53]


def test_a_timestamp_beyond_int64_is_rejected_with_its_line(tmp_path):
    path = write(tmp_path / "UserBehavior.csv", f"1,2,3,pv,10\n1,3,3,pv,{2**63}\n")
    with pytest.raises(ValueError, match=r"timestamp: beyond the int64 range\) at lines \[2\]"):
        load_taobao(path, progress=False)


def test_id_zero_is_an_id_unless_the_field_is_optional(tmp_path):
    """Before: any id 0 stayed 0, which is padding: an item 0 vanished from every history."""
    path = write(tmp_path / "UserBehavior.csv", "1,0,3,pv,10\n1,5,3,pv,11\n")
    events = load_taobao(path, progress=False)
    assert events["item"].tolist() == [1, 2] and originals(events, "item") == [0, 5]


def test_tmall_ids_stay_exact(tmp_path):
    header = "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n"
    rows = [f"{i},{i},{i},{i},{i},05{10 + n},0\n" for n, i in enumerate(IDS)]
    events = load_tmall(write(tmp_path / "user_log_format1.csv", header + "".join(rows)), progress=False)
    for field in ("user", "item", "category", "seller", "brand"):
        assert_exact(events, field, IDS)


def test_movielens_ids_stay_exact_in_every_layout(tmp_path):
    """Items 2^53 and 2^53 + 1 have different genres: a float64 would give both one movie's genre."""
    genres = ["Comedy", "Horror", "Drama", "War", "Crime"]
    users = IDS[::-1]
    pairs = list(enumerate(zip(users, IDS, strict=True)))
    movies = list(enumerate(zip(IDS, genres, strict=True)))
    (tmp_path / "1m").mkdir()
    dat = write(
        tmp_path / "1m" / "ratings.dat",
        "".join(f"{u}::{i}::4::{978300000 + n}\n" for n, (u, i) in pairs),
    )
    write(tmp_path / "1m" / "movies.dat", "".join(f"{i}::T{n}::{g}\n" for n, (i, g) in movies))
    (tmp_path / "latest").mkdir()
    csv = write(
        tmp_path / "latest" / "ratings.csv",
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},4.5,{100 + n}\n" for n, (u, i) in pairs),
    )
    write(
        tmp_path / "latest" / "movies.csv",
        "movieId,title,genres\n" + "".join(f"{i},T{n},{g}\n" for n, (i, g) in movies),
    )
    (tmp_path / "100k").mkdir()
    data = write(
        tmp_path / "100k" / "u.data",
        "".join(f"{u}\t{i}\t3\t{881250949 + n}\n" for n, (u, i) in pairs),
    )
    flags = ["0"] * 19
    flags[5] = "1"  # Comedy for every movie here
    items = "".join(f"{i}|T|01-Jan-1995||http://x|" + "|".join(flags) + "\n" for i in IDS)
    write(tmp_path / "100k" / "u.item", items)
    for path, expected_genres in ((dat, genres), (csv, genres), (data, ["Comedy"] * 5)):
        events = load_movielens(path, progress=False)  # sorted by user: the reverse of the file
        assert_exact(events, "user", sorted(users))
        assert_exact(events, "item", IDS[::-1])
        vocabulary = events.attrs["vocabularies"]["category"]
        assert [vocabulary[c - 1] for c in events["category"]] == expected_genres[::-1]


def test_amazon_text_ids_stay_exact(tmp_path):
    """Amazon ids are text (JSON numbers too): kept digit for digit. (This held before; kept as a guard.)"""
    reviews = [
        {"reviewerID": 2**53 + 1, "asin": str(2**64 - 1), "overall": 4.0, "unixReviewTime": 20},
        {"reviewerID": 2**53, "asin": str(2**63), "overall": 5.0, "unixReviewTime": 10},
    ]
    path = write(tmp_path / "reviews_Books_5.json", "".join(json.dumps(r) + "\n" for r in reviews))
    events = load_amazon(path, progress=False)
    assert list(events.attrs["vocabularies"]["user"]) == [str(2**53), str(2**53 + 1)]
    assert list(events.attrs["vocabularies"]["item"]) == [str(2**64 - 1), str(2**63)]  # text order
    assert encode_ids(events.attrs["vocabularies"]["item"], [2**64 - 1, str(2**63)]).tolist() == [1, 2]


def test_encode_ids_refuses_float_ids():
    vocabulary = np.array([2**53, 2**53 + 1], dtype="int64")
    assert encode_ids(vocabulary, np.array([2**53 + 1], dtype="int64")).tolist() == [2]
    with pytest.raises(ValueError, match=r"not float64.*2\^53"):
        encode_ids(vocabulary, np.array([9007199254740992.0]))
