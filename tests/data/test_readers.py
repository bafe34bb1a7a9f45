"""The dataset readers on small files in the original formats: ids, order, malformed rows."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from keras_lsrec.data import encode_ids, load_amazon, load_movielens, load_taobao, load_tmall, vocab_sizes


def write(path, text):
    path.write_text(text)
    return str(path)


def test_load_taobao_remaps_sorts_and_filters(tmp_path):
    path = write(
        tmp_path / "UserBehavior.csv",
        "7,500,90,pv,1511544070\n"
        "7,300,90,buy,1511544000\n"  # earlier than the line above: re-sorted
        "2,300,90,pv,1511550000\n"
        "2,500,91,cart,1511540000\n",
    )
    with pytest.warns(UserWarning, match="out of time order") as caught:
        events = load_taobao(path, progress=False)
    assert [w.filename for w in caught] == [__file__]  # the warning names the caller's line
    assert list(events.columns) == ["user", "item", "category", "behavior", "timestamp"]
    # ids 1..N in the order of the original ids; users sorted, then time.
    assert events["user"].tolist() == [1, 1, 2, 2]
    assert events["item"].tolist() == [2, 1, 1, 2]
    assert events["behavior"].astype(str).tolist() == ["cart", "pv", "buy", "pv"]
    assert (
        events["timestamp"].is_monotonic_increasing is False
        and events.groupby("user")["timestamp"].apply(lambda t: t.is_monotonic_increasing).all()
    )
    assert events.attrs["report"].unsorted == 2  # lines 2 and 4 are earlier than the line before
    assert list(events.attrs["vocabularies"]["item"]) == [300, 500]
    assert vocab_sizes(events) == {"user": 4, "item": 4, "category": 4}
    assert encode_ids(events.attrs["vocabularies"]["item"], [500, 300, 999]).tolist() == [2, 1, 3]  # 3 = OOV
    page_views = load_taobao(path, behaviors=["pv"], progress=False)
    assert page_views["behavior"].astype(str).tolist() == ["pv", "pv"]
    # Reading in chunks of one line gives the same table.
    pd.testing.assert_frame_equal(load_taobao(path, chunk_rows=1, progress=False), events)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("3,100,9,pv\n", "timestamp: missing or empty"),
        ("3,abc,9,pv,1511544070\n", "item: not an integer"),
        ("3,100,9,click,1511544070\n", "behavior: not one of"),
        ("3,,9,pv,1511544070\n", "item: missing or empty"),
    ],
)
def test_malformed_rows_are_reported_with_line_numbers(tmp_path, line, reason):
    good = "1,100,9,pv,1511544000\n2,101,9,pv,1511544001\n"
    path = write(tmp_path / "UserBehavior.csv", good + line + good)
    with pytest.raises(ValueError, match=rf"{reason}.* at lines \[3\]"):
        load_taobao(path, progress=False)
    with pytest.warns(UserWarning, match="rejected"):
        events = load_taobao(path, errors="skip", progress=False)
    report = events.attrs["report"]
    assert report.rejected_count == 1 and list(report.rejected.values()) == [[3]]
    assert len(events) == 4 - 2  # the rejected line out, then the repeated good lines as duplicates
    assert report.duplicate_count == 2 and report.duplicates == [4, 5]


def test_behaviour_codes_do_not_depend_on_the_chunk(tmp_path):
    """A chunk that parses with numeric types and one re-read as text (because of
    a bad number) apply the same rule to a behaviour: surrounding spaces ignored."""
    path = write(
        tmp_path / "UserBehavior.csv", "1,100,9, pv ,1511544000\n2,101,9,buy,1511544001\n2,x,9,pv,5\n"
    )
    with pytest.warns(UserWarning, match="rejected"):
        whole = load_taobao(path, errors="skip", progress=False)  # one chunk, re-read as text
    with pytest.warns(UserWarning, match="rejected"):
        lines = load_taobao(path, errors="skip", chunk_rows=1, progress=False)  # lines 1-2 parse as numbers
    pd.testing.assert_frame_equal(whole, lines)
    assert whole["behavior"].astype(str).tolist() == ["pv", "buy"]
    assert whole.attrs["report"].rejected == {"item: not an integer": [3]}


def test_too_many_columns_is_a_clear_error(tmp_path):
    path = write(tmp_path / "UserBehavior.csv", "1,100,9,pv,1511544000\n1,100,9,pv,1511544000,extra\n")
    with pytest.raises(ValueError, match="malformed file.*line 2"):
        load_taobao(path, progress=False)


def test_bad_arguments_are_refused(tmp_path):
    path = write(tmp_path / "UserBehavior.csv", "1,100,9,pv,1511544000\n")
    with pytest.raises(ValueError, match="behaviors"):
        load_taobao(path, behaviors=["click"], progress=False)
    with pytest.raises(ValueError, match="errors"):
        load_taobao(path, errors="ignore", progress=False)
    with pytest.raises(ValueError, match="No such file"):
        load_taobao(tmp_path / "missing.csv", progress=False)


def test_load_tmall(tmp_path):
    path = write(
        tmp_path / "user_log_format1.csv",
        "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n"
        "10,5,1,3,,1111,0\n"
        "10,6,2,3,8,0512,2\n"
        "11,5,1,3,9,0601,0\n",
    )
    events = load_tmall(path, progress=False)
    assert list(events.columns) == ["user", "item", "category", "seller", "brand", "action", "timestamp"]
    first = events.iloc[0]
    assert (first["user"], first["action"], first["brand"]) == (1, 2, 1)  # May 12 before Nov 11; brand 8 -> 1
    assert events["brand"].tolist() == [1, 0, 2]  # the missing brand is 0
    assert pd.Timestamp(events["timestamp"].iloc[1], unit="s") == pd.Timestamp("2015-11-11")
    assert load_tmall(path, actions=[0], progress=False)["action"].tolist() == [0, 0]
    bad = write(
        tmp_path / "bad.csv",
        "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n1,2,3,4,5,1341,0\n",
    )
    with pytest.raises(ValueError, match=r"mmdd.*\[2\]"):
        load_tmall(bad, progress=False)


def test_load_amazon_json_lines_csv_and_metadata(tmp_path):
    reviews = [
        {"reviewerID": "B", "asin": "x2", "overall": 4.0, "unixReviewTime": 20, "reviewText": "a, b"},
        {"reviewerID": "A", "asin": "x1", "overall": 5.0, "unixReviewTime": 10},
        {"reviewerID": "B", "asin": "x1", "overall": 3.0, "unixReviewTime": 10},
    ]
    path = write(tmp_path / "reviews_Books_5.json", "".join(json.dumps(r) + "\n" for r in reviews))
    meta = write(
        tmp_path / "meta_Books.json",
        "{'asin': 'x1', 'categories': [['Books', 'Fiction']], 'price': 12.99}\n"
        + json.dumps({"asin": "x2", "category": ["Books", "Poetry", "Haiku"], "price": "$1,000.00"})
        + "\n",
    )
    events = load_amazon(path, meta_path=meta, progress=False)
    assert events[["user", "item", "timestamp"]].values.tolist() == [[1, 1, 10], [2, 1, 10], [2, 2, 20]]
    assert events["rating"].tolist() == [5.0, 3.0, 4.0]
    assert list(events.attrs["vocabularies"]["category"]) == ["Fiction", "Haiku"]
    # The metadata's item features: the category path (a bag) and the price (dense), per item id.
    spec, paths = events.attrs["item_features"]["category_path"]
    names = list(events.attrs["item_feature_values"]["category_path"])
    assert names == ["Books", "Fiction", "Haiku", "Poetry"] and spec.max_values == 3
    assert paths.tolist() == [[0, 0, 0], [1, 2, 0], [1, 4, 3], [0, 0, 0]]  # padding, x1, x2, OOV
    _, price = events.attrs["item_features"]["price"]
    np.testing.assert_allclose(
        price, [[0, 0], [np.log1p(12.99), 1], [np.log1p(1000.0), 1], [0, 0]], rtol=1e-6
    )
    assert events["category"].tolist() == [1, 1, 2]
    assert "item_features" not in load_amazon(path, progress=False).attrs  # no metadata, no features
    broken = write(tmp_path / "broken.json", json.dumps(reviews[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"at lines \[2\]"):
        load_amazon(broken, progress=False)
    csv = write(tmp_path / "ratings_Books.csv", "B,x2,4.0,20\nA,x1,5.0,10\nB,x1,3.0,10\n")
    with pytest.warns(UserWarning, match="out of time order") as caught:
        from_csv = load_amazon(csv, progress=False)
    assert [w.filename for w in caught] == [__file__]  # the warning names the caller's line
    assert from_csv[["user", "item", "timestamp"]].values.tolist() == [[1, 1, 10], [2, 1, 10], [2, 2, 20]]
    assert (from_csv["category"] == 0).all()  # no metadata: unknown category


def test_text_ids_stay_text_whichever_parse_a_chunk_takes(tmp_path):
    """Ids that look like numbers (ISBN asins such as "0001") keep their zeros and "NA" is an id,
    in chunks parsed with types (chunks of one line) as in a chunk re-read as text (line 4's bad
    timestamp): the same table either way."""
    path = write(tmp_path / "ratings_Books.csv", "A,0001,5.0,10\nB,000X,4.0,20\nNA,0001,3.0,30\nC,0,1.0,x\n")
    meta = write(tmp_path / "meta_Books.json", json.dumps({"asin": "0001", "category": ["Books"]}) + "\n")
    with pytest.warns(UserWarning, match="rejected"):
        whole = load_amazon(path, meta_path=meta, errors="skip", progress=False)
    with pytest.warns(UserWarning, match="rejected"):
        lines = load_amazon(path, meta_path=meta, errors="skip", chunk_rows=1, progress=False)
    pd.testing.assert_frame_equal(whole, lines)
    assert list(whole.attrs["vocabularies"]["item"]) == ["0001", "000X"]
    assert list(whole.attrs["vocabularies"]["user"]) == ["A", "B", "NA"]
    assert whole["category"].tolist() == [1, 0, 1]
    assert whole.attrs["report"].rejected == {"timestamp: not an integer": [4]}


def test_load_movielens_formats(tmp_path):
    (tmp_path / "1m").mkdir()
    dat = write(
        tmp_path / "1m" / "ratings.dat", "1::20::5::978300760\n1::10::3::978300000\n2::10::4::978300001\n"
    )
    write(tmp_path / "1m" / "movies.dat", "10::A (1995)::Comedy|Drama\n20::B (1996)::Horror\n")
    events = load_movielens(dat, progress=False)
    assert events[["user", "item"]].values.tolist() == [[1, 1], [1, 2], [2, 1]]
    vocabulary = events.attrs["vocabularies"]["category"]
    assert [vocabulary[c - 1] for c in events["category"]] == ["Comedy", "Horror", "Comedy"]
    # Every genre, as a bag per item (row = new item id; padding and OOV rows empty).
    spec, table = events.attrs["item_features"]["genres"]
    assert list(events.attrs["item_feature_values"]["genres"]) == ["Comedy", "Drama", "Horror"]
    assert spec.vocab_size == 4 and spec.max_values == 2
    assert table.tolist() == [[0, 0], [1, 2], [3, 0], [0, 0]]
    (tmp_path / "100k").mkdir()
    data = write(tmp_path / "100k" / "u.data", "1\t10\t3\t881250949\n1\t20\t4\t881250950\n")
    flags = ["0"] * 19
    horror = list(flags)
    horror[11] = "1"
    write(
        tmp_path / "100k" / "u.item",
        "10|A|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
        "20|B|01-Jan-1995||http://y|" + "|".join(horror) + "\n",
    )
    events = load_movielens(data, progress=False)
    assert events["category"].tolist() == [0, 1]  # no genre flag -> 0; Horror
    (tmp_path / "latest").mkdir()
    csv = write(
        tmp_path / "latest" / "ratings.csv", "userId,movieId,rating,timestamp\n5,10,4.5,100\n5,11,2.0,90\n"
    )
    write(
        tmp_path / "latest" / "movies.csv",
        'movieId,title,genres\n10,"A, The (1995)",Drama|War\n11,B,(no genres listed)\n',
    )
    events = load_movielens(csv, progress=False)
    assert events["item"].tolist() == [2, 1] and events["category"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="Unknown MovieLens file"):
        load_movielens(write(tmp_path / "x.txt", ""), progress=False)


TMALL_HEADER = "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n"
TMALL_ROWS = "10,5,1,3,,1111,0\n10,6,2,3,8,0512,2\n11,5,1,3,9,0601,0\n"


def same_events(a, b):
    """Equal tables (their `attrs` name their own source file)."""
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_flags=False)
    assert {k: list(v) for k, v in a.attrs["vocabularies"].items()} == {
        k: list(v) for k, v in b.attrs["vocabularies"].items()
    }


def test_tmall_header_is_recognised_by_content(tmp_path):
    """Before: the first line was always skipped, so a file without the header lost its first event."""
    with_header = load_tmall(write(tmp_path / "with.csv", TMALL_HEADER + TMALL_ROWS), progress=False)
    without = load_tmall(write(tmp_path / "without.csv", TMALL_ROWS), progress=False)
    assert len(with_header) == len(without) == 3
    same_events(without, with_header)
    bom = write(tmp_path / "bom.csv", "\ufeff" + TMALL_HEADER.upper() + TMALL_ROWS)
    bom = load_tmall(bom, progress=False)
    same_events(bom, with_header)
    other = "user,item,category,seller,brand,day,action\n"  # a header, but not the file's
    with pytest.raises(ValueError, match=r"other\.csv: line 1 \('user,item.*'\) has no integer id.*user_id,"):
        load_tmall(write(tmp_path / "other.csv", other + TMALL_ROWS), progress=False)
    # A malformed first event is a malformed row (with its line), not a header.
    with pytest.raises(ValueError, match=r"user: not an integer\) at lines \[1\]"):
        load_tmall(write(tmp_path / "bad.csv", "x" + TMALL_ROWS), progress=False)


def test_movielens_csv_header_is_recognised_by_content(tmp_path):
    write(tmp_path / "movies.csv", "movieId,title,genres\n10,A,Drama\n11,B,War\n")
    plain = write(tmp_path / "ratings.csv", "5,10,4.5,100\n5,11,2.0,90\n")
    events = load_movielens(plain, progress=False)
    assert len(events) == 2 and events["item"].tolist() == [2, 1]


def gzip_file(path, text):
    path.write_bytes(gzip.compress(text.encode()))
    return str(path)


def test_gzip_files_are_read_as_they_are(tmp_path):
    """Before: a `.gz` file raised a bare UnicodeDecodeError."""
    taobao = "1,100,9,pv,1511544000\n2,101,9,buy,1511544001\n"
    same_events(
        load_taobao(gzip_file(tmp_path / "UserBehavior.csv.gz", taobao), progress=False),
        load_taobao(write(tmp_path / "UserBehavior.csv", taobao), progress=False),
    )
    same_events(
        load_tmall(gzip_file(tmp_path / "log.csv.gz", TMALL_HEADER + TMALL_ROWS), progress=False),
        load_tmall(write(tmp_path / "user_log_format1.csv", TMALL_HEADER + TMALL_ROWS), progress=False),
    )
    reviews = "".join(
        json.dumps({"reviewerID": u, "asin": a, "overall": 4.0, "unixReviewTime": t}) + "\n"
        for u, a, t in (("A", "x1", 10), ("A", "x2", 20))
    )
    meta = json.dumps({"asin": "x1", "category": ["Books", "Poetry"]}) + "\n"
    (tmp_path / "gz").mkdir()
    zipped = load_amazon(
        gzip_file(tmp_path / "gz" / "reviews_Books_5.json.gz", reviews),
        meta_path=gzip_file(tmp_path / "gz" / "meta_Books.json.gz", meta),
        progress=False,
    )
    same_events(
        zipped,
        load_amazon(
            write(tmp_path / "reviews.json", reviews),
            meta_path=write(tmp_path / "m.json", meta),
            progress=False,
        ),
    )
    assert zipped["category"].tolist() == [1, 0]
    (tmp_path / "ml").mkdir()
    gzip_file(tmp_path / "ml" / "movies.csv.gz", "movieId,title,genres\n10,A,Drama\n11,B,War\n")
    ratings = "userId,movieId,rating,timestamp\n5,10,4.5,100\n5,11,2.0,90\n"
    with pytest.warns(UserWarning, match="out of time order"):
        events = load_movielens(gzip_file(tmp_path / "ml" / "ratings.csv.gz", ratings), progress=False)
    vocabulary = events.attrs["vocabularies"]["category"]
    assert [vocabulary[c - 1] for c in events["category"]] == ["War", "Drama"]
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(taobao.encode() * 50)[:-12])
    with pytest.raises(ValueError, match=r"cut\.csv\.gz: the gzip data is truncated or corrupt"):
        load_taobao(str(truncated), progress=False)


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "UserBehavior.csv"
    path.write_bytes(b"1,100,9,pv,1511544000\n2,101,9,p\xe9,1511544001\n")
    with pytest.raises(ValueError, match=r"UserBehavior\.csv: line 2 is not UTF-8 text.*iconv"):
        load_taobao(str(path), progress=False)


@pytest.mark.parametrize("actions", [[5], ["click"], [], [True], "0", 0])
def test_tmall_actions_are_validated_like_taobao_behaviors(tmp_path, actions):
    """Before: `load_tmall(actions=[5])` or `actions=["click"]` returned an empty table, no error."""
    path = write(tmp_path / "user_log_format1.csv", TMALL_HEADER + TMALL_ROWS)
    with pytest.raises(ValueError, match=r"`actions` must .*0 \(click\), 1 \(cart\), 2 \(purchase\)"):
        load_tmall(path, actions=actions, progress=False)


def test_selections_are_checked_by_one_rule(tmp_path):
    tmall = write(tmp_path / "user_log_format1.csv", TMALL_HEADER + TMALL_ROWS)
    with pytest.raises(
        ValueError, match=r"Received 'click' in `actions=\['click'\]` \('click' is written 0\)"
    ):
        load_tmall(tmall, actions=["click"], progress=False)
    assert load_tmall(tmall, actions=np.array([2]), progress=False)["action"].tolist() == [2]
    taobao = write(tmp_path / "UserBehavior.csv", "1,100,9,pv,1511544000\n2,101,9,buy,1511544001\n")
    for behaviors in (["click"], [], "pv", [0]):
        with pytest.raises(ValueError, match=r"`behaviors` must .*'pv', 'buy', 'cart', 'fav'"):
            load_taobao(taobao, behaviors=behaviors, progress=False)
    assert load_taobao(taobao, behaviors=("buy",), progress=False)["item"].tolist() == [1]


@pytest.mark.parametrize(
    "name, value",
    [("chunk_rows", 0), ("chunk_rows", True), ("chunk_rows", 2.0), ("progress", "no"), ("errors", None)],
)
def test_reader_arguments_are_checked_before_reading(tmp_path, name, value):
    """Before: `chunk_rows=0` read a Tmall file as an empty table and `progress="no"` showed the bar."""
    path = write(tmp_path / "user_log_format1.csv", TMALL_HEADER + TMALL_ROWS)
    with pytest.raises(ValueError, match=rf"`{name}` must be .*Received: `{name}={value!r}`"):
        load_tmall(path, **{name: value})
    assert len(load_tmall(path, chunk_rows=np.int64(1), progress=np.bool_(False))) == 3


@pytest.mark.parametrize("year", [2015.0, True, 3000, "2015"])
def test_tmall_year_is_checked(tmp_path, year):
    """Before: `year=3000` rejected every row as "not a valid mmdd date", blaming the file."""
    path = write(tmp_path / "user_log_format1.csv", TMALL_HEADER + TMALL_ROWS)
    with pytest.raises(ValueError, match=r"`year` must be an integer in \[1678, 2261\]"):
        load_tmall(path, year=year, progress=False)


def test_blank_lines_hold_no_event_and_do_not_decide_the_format(tmp_path):
    """Before: a JSON-lines file starting with a blank line was read as CSV (every review rejected,
    "timestamp: not an integer"), a blank line before a header made the header an event, and
    every blank line was a malformed row."""
    reviews = [
        {"reviewerID": "A", "asin": "x1", "overall": 5.0, "unixReviewTime": 10},
        {"reviewerID": "B", "asin": "x2", "overall": 4.0, "unixReviewTime": 20},
    ]
    lines = [json.dumps(r) + "\n" for r in reviews]
    plain = load_amazon(write(tmp_path / "plain.json", "".join(lines)), progress=False)
    spaced = load_amazon(
        write(tmp_path / "spaced.json", "\n" + lines[0] + "  \r\n" + lines[1] + "\n"), progress=False
    )
    same_events(spaced, plain)
    assert spaced.attrs["report"].blank_lines == 3 and spaced.attrs["report"].rejected_count == 0
    zipped = load_amazon(gzip_file(tmp_path / "z.json.gz", "\n\n " + lines[0] + lines[1]), progress=False)
    same_events(zipped, plain)
    with_header = load_tmall(write(tmp_path / "a.csv", TMALL_HEADER + TMALL_ROWS), progress=False)
    blank_first = load_tmall(
        write(tmp_path / "b.csv", "\n \n" + TMALL_HEADER + TMALL_ROWS + "\n"), progress=False
    )
    same_events(blank_first, with_header)
    assert blank_first.attrs["report"].blank_lines == 3
    # Line numbers still count the blank lines: the bad row is line 5 of the file.
    with pytest.raises(ValueError, match=r"user: not an integer\) at lines \[5\]"):
        load_tmall(
            write(tmp_path / "c.csv", "\n" + TMALL_HEADER + "10,5,1,3,,1111,0\n\nx,6,2,3,8,0512,2\n"),
            progress=False,
        )
    for chunk_rows in (1, 2, 1000):
        taobao = load_taobao(
            write(tmp_path / "UserBehavior.csv", "1,100,9,pv,1511544000\n\n\n2,101,9,buy,1511544001\n\n"),
            chunk_rows=chunk_rows,
            progress=False,
        )
        assert len(taobao) == 2 and taobao.attrs["report"].blank_lines == 3


@pytest.mark.parametrize(
    "load, text",
    [
        (load_taobao, ""),
        (load_taobao, "\n\n"),
        (load_tmall, TMALL_HEADER),
        (load_amazon, ""),
    ],
)
def test_a_file_without_events_is_an_empty_table(tmp_path, load, text):
    events = load(write(tmp_path / "events.csv", text), progress=False)
    assert len(events) == 0 and "user" in events.columns and "timestamp" in events.columns


def test_amazon_metadata_path_is_checked_before_the_reviews_are_read(tmp_path, monkeypatch):
    """Before: a wrong `meta_path` was found only after the whole reviews file was read."""
    from keras_lsrec.data.readers import amazon

    path = write(tmp_path / "reviews.csv", "A,x1,5.0,10\n")
    monkeypatch.setattr(amazon, "read_table", lambda *a, **k: pytest.fail("the reviews were read"))
    with pytest.raises(ValueError, match="No such file.*meta"):
        load_amazon(path, meta_path=tmp_path / "meta.json", progress=False)
