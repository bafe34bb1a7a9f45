"""`load_longctr` on tiny files in reczoo LongCTR's published layout (MicroVideo1.7M_x2 / KuaiVideo_x2
and Ebnerd_small_x1 column sets), checked against a direct numpy reading of the same files."""

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keras_lsrec.data import Categorical, Dense, load_longctr, write_longctr_files
from keras_lsrec.data.longctr import EBNERD_CONTEXT, EBNERD_LISTS
from keras_lsrec.models import DIN

# EBNeRD's per-impression columns (LongCTR's Ebnerd_small_x1 dataset_config: no `source: item`),
# with a vocabulary for the user id of these tiny files.
EBNERD_ROWS = {**EBNERD_CONTEXT, "user_id": 30}
EBNERD_BAGS = EBNERD_LISTS


def _write(path, columns):
    pq.write_table(pa.table(columns), path)


def make_files(directory, ebnerd=False, users=7, items=25, seed=0):
    """Writes the five files; returns what was written, as numpy, for the direct reading."""
    rng = np.random.default_rng(seed)
    item_cols = {"item_index": pa.array(np.arange(items, dtype="int64"))}
    if ebnerd:
        item_cols["article_id"] = pa.array(np.arange(items, dtype="int64"))
        category = np.r_[0, rng.integers(1, 16, items - 1)]
        item_cols["category"] = pa.array(category)
        sub = [[0] * 5] + [
            list(np.r_[rng.integers(1, 91, k), np.zeros(5 - k, int)]) for k in rng.integers(1, 4, items - 1)
        ]
        item_cols["subcategory"] = pa.array(sub, pa.list_(pa.int64()))
    else:
        item_cols["item_id"] = pa.array(np.arange(items, dtype="int64"))
        category = np.r_[0, rng.integers(1, 20, items - 1)]
        item_cols["cate_id"] = pa.array(category)
        emb = rng.normal(size=(items, 64)).astype("float32")
        emb[0] = 0
        item_cols["image_emb_dim64"] = pa.array(list(emb), pa.list_(pa.float32()))
    _write(directory / "item_info.parquet", item_cols)
    seqs = [list(rng.integers(1, items, rng.integers(0, 15))) for _ in range(users)]
    _write(
        directory / "user_info.parquet",
        {"user_index": pa.array(np.arange(users)), "full_item_seq": pa.array(seqs, pa.list_(pa.int64()))},
    )
    splits = {}
    for name, n in (("train", 40), ("valid", 9), ("test", 11)):
        user = rng.integers(0, users, n)
        cols = {
            "user_index": user,
            "item_index": rng.integers(1, items, n),
            "seq_len": np.array([rng.integers(0, len(seqs[u]) + 1) for u in user]),
        }
        if ebnerd:
            cols["click"] = rng.integers(0, 2, n).astype("int64")
            for c, v in EBNERD_ROWS.items():
                cols[c] = rng.integers(0, v - 1, n)
        else:
            cols["is_click"] = rng.integers(0, 2, n).astype("float64")
        table = {c: pa.array(v) for c, v in cols.items()}
        if ebnerd:
            for c, v in EBNERD_BAGS.items():
                bags = rng.integers(0, v - 1, (n, 5))
                cols[c] = bags
                table[c] = pa.array(list(bags), pa.list_(pa.int64()))
        _write(directory / f"{name}.parquet", table)
        splits[name] = cols
    return {"items": item_cols, "seqs": seqs, "splits": splits, "category": category}


def direct_history(seqs, users, lengths, max_len):
    out = np.zeros((len(users), max_len), "int64")
    for r, (u, n) in enumerate(zip(users, lengths, strict=True)):
        h = seqs[u][:n][-max_len:]
        if len(h):
            out[r, -len(h) :] = h
    return out


@pytest.mark.parametrize("ebnerd", [False, True], ids=["microvideo", "ebnerd"])
def test_batches_equal_direct_reading(tmp_path, ebnerd):
    written = make_files(tmp_path, ebnerd=ebnerd)
    max_len = 6
    splits = load_longctr(tmp_path, max_len=max_len, batch_size=8)
    assert list(splits) == ["train", "validation", "test"]
    schema = splits["train"].schema
    assert all(s.schema == schema for s in splits.values())
    assert not splits["validation"].shuffle and splits["train"].shuffle
    for split, file in (("train", "train"), ("validation", "valid"), ("test", "test")):
        cols = written["splits"][file]
        x, y = splits[split].arrays()
        history = direct_history(written["seqs"], cols["user_index"], cols["seq_len"], max_len)
        np.testing.assert_array_equal(x["history_item"], history)
        np.testing.assert_array_equal(x["target_item"], cols["item_index"])
        np.testing.assert_array_equal(x["history_category"], written["category"][history])
        np.testing.assert_array_equal(x["target_category"], written["category"][cols["item_index"]])
        np.testing.assert_array_equal(y, cols["click" if ebnerd else "is_click"])
        np.testing.assert_array_equal(splits[split].users, cols["user_index"])
        if ebnerd:
            sub = np.array(written["items"]["subcategory"].to_pylist())
            np.testing.assert_array_equal(x["history_subcategory"], sub[history])
            np.testing.assert_array_equal(x["target_subcategory"], sub[cols["item_index"]])
            for c in [*EBNERD_ROWS, *EBNERD_BAGS]:
                np.testing.assert_array_equal(x[c], cols[c])
        else:
            emb = np.array(written["items"]["image_emb_dim64"].to_pylist(), "float32")
            np.testing.assert_array_equal(x["history_image_emb_dim64"], emb[history])
            np.testing.assert_array_equal(x["target_image_emb_dim64"], emb[cols["item_index"]])
    if ebnerd:
        assert set(schema.features) == {*EBNERD_ROWS, *EBNERD_BAGS}
        assert schema.features["topics"] == Categorical(schema.features["topics"].vocab_size, max_values=5)
        assert schema.item_features["subcategory"].max_values == 5
    else:
        assert schema.item_features == {"image_emb_dim64": Dense(64)}
        assert schema.features == {}
    assert set(schema.vocab_sizes) == {"item", "category"}
    assert schema.vocab_sizes["item"] == 25
    # one copy of the user sequences, shared by the splits
    assert splits["train"].sequences["item"] is splits["test"].sequences["item"]


@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="CI time: the first eager DIN call costs ~18 s on jax"
)
def test_din_runs_on_the_schema(tmp_path):
    make_files(tmp_path, ebnerd=True)
    splits = load_longctr(tmp_path, max_len=5, batch_size=4)
    model = DIN(splits["train"].schema, embedding_dim=8, mlp_units=(8,), attention_units=(8,))
    batch, _ = splits["train"][0]
    assert tuple(model(batch).shape)[0] == 4


def test_config_vocab_sizes_and_columns(tmp_path):
    make_files(tmp_path, ebnerd=True)
    config = {
        "Ebnerd_small_x1": {
            "feature_cols": [
                {"name": "user_index", "active": True, "dtype": "int", "type": "meta"},
                {"name": "item_index", "active": True, "dtype": "int", "type": "meta"},
                {"name": "seq_len", "active": True, "dtype": "int", "type": "meta"},
                {"name": "user_id", "active": True, "type": "categorical", "vocab_size": 40},
                {
                    "name": "article_id",
                    "active": True,
                    "type": "categorical",
                    "vocab_size": 30,
                    "source": "item",
                },
                {"name": "topics", "active": True, "type": "sequence", "max_len": 5, "vocab_size": 80},
                {
                    "name": "category",
                    "active": True,
                    "type": "categorical",
                    "vocab_size": 16,
                    "source": "item",
                },
                {
                    "name": "subcategory",
                    "active": True,
                    "type": "sequence",
                    "max_len": 5,
                    "vocab_size": 91,
                    "source": "item",
                },
                {"name": "gender", "active": False, "type": "categorical", "vocab_size": 4},
            ],
            "label_col": {"name": "click", "dtype": "float"},
        }
    }
    splits = load_longctr(tmp_path, max_len=4, config=config)
    schema = splits["test"].schema
    assert set(schema.features) == {"user_id", "topics"}
    assert schema.features["user_id"].vocab_size == 40
    assert schema.vocab_sizes == {"item": 30, "category": 16}
    assert schema.item_features["subcategory"] == Categorical(91, max_values=5)
    x, _ = splits["test"][0]
    assert x["history_subcategory"].shape[1:] == (4, 5)


def _rewrite(path, column, values):
    table = pq.read_table(path)
    index = table.column_names.index(column)
    pq.write_table(table.set_column(index, column, values), path)


def test_bad_files_are_refused_by_name(tmp_path):
    written = make_files(tmp_path)
    train = tmp_path / "train.parquet"
    # seq_len beyond the user's sequence
    cols = written["splits"]["train"]
    lengths = cols["seq_len"].copy()
    lengths[3] = len(written["seqs"][cols["user_index"][3]]) + 1
    _rewrite(train, "seq_len", pa.array(lengths))
    with pytest.raises(ValueError, match=r"train\.parquet: `seq_len` = \d+ at row 3"):
        load_longctr(tmp_path, max_len=4)
    _rewrite(train, "seq_len", pa.array(cols["seq_len"]))
    # target item outside item_info
    items = cols["item_index"].copy()
    items[5] = 25
    _rewrite(train, "item_index", pa.array(items))
    with pytest.raises(ValueError, match=r"train\.parquet: column 'item_index' holds 25 at row 5"):
        load_longctr(tmp_path, max_len=4)
    _rewrite(train, "item_index", pa.array(cols["item_index"]))
    # history item outside item_info
    seqs = [list(s) for s in written["seqs"]]
    user = next(u for u, s in enumerate(seqs) if s)
    seqs[user][0] = 99
    _rewrite(tmp_path / "user_info.parquet", "full_item_seq", pa.array(seqs, pa.list_(pa.int64())))
    with pytest.raises(ValueError, match=rf"user_info\.parquet: `full_item_seq` of user {user} .* item 99"):
        load_longctr(tmp_path, max_len=4)
    _rewrite(tmp_path / "user_info.parquet", "full_item_seq", pa.array(written["seqs"], pa.list_(pa.int64())))
    # NaN in an embedding
    emb = np.array(written["items"]["image_emb_dim64"].to_pylist(), "float32")
    emb[7, 3] = np.nan
    _rewrite(tmp_path / "item_info.parquet", "image_emb_dim64", pa.array(list(emb), pa.list_(pa.float32())))
    with pytest.raises(
        ValueError, match=r"item_info\.parquet: column 'image_emb_dim64' holds .*nan.* row 7, position 3"
    ):
        load_longctr(tmp_path, max_len=4)
    emb[7, 3] = 0
    _rewrite(tmp_path / "item_info.parquet", "image_emb_dim64", pa.array(list(emb), pa.list_(pa.float32())))
    # a missing column, a missing file
    pq.write_table(pq.read_table(train).drop_columns(["seq_len"]), train)
    with pytest.raises(ValueError, match=r"train\.parquet has no column 'seq_len'"):
        load_longctr(tmp_path, max_len=4)
    (tmp_path / "user_info.parquet").unlink()
    with pytest.raises(ValueError, match=r"user_info\.parquet is missing"):
        load_longctr(tmp_path, max_len=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(shuffle="no"), "shuffle"),
        (dict(time=1), "time"),
        (dict(features="topics"), "features"),
        (dict(item_columns=[3]), "item_columns"),
        (dict(vocab_sizes={"cate_id": 0}), r"vocab_sizes\['cate_id'\]"),
    ],
)
def test_bad_arguments_are_refused_before_any_file_is_read(kwargs, match, tmp_path):
    # An empty directory: an argument error must come first, not "a file is missing".
    with pytest.raises(ValueError, match=match):
        load_longctr(tmp_path, max_len=4, **kwargs)


def test_id_beyond_a_given_vocabulary(tmp_path):
    make_files(tmp_path)
    with pytest.raises(
        ValueError, match=r"item_info\.parquet: column 'cate_id' holds id \d+ .*\(vocab_size 3\)"
    ):
        load_longctr(tmp_path, max_len=4, vocab_sizes={"cate_id": 3})


def test_item_id_other_than_the_row_is_its_own_field(tmp_path):
    make_files(tmp_path)
    path = tmp_path / "item_info.parquet"
    ids = np.r_[0, np.arange(1, 25) + 100]
    _rewrite(path, "item_id", pa.array(ids))
    splits = load_longctr(tmp_path, max_len=4)
    x, _ = splits["train"].arrays()
    np.testing.assert_array_equal(
        x["history_item_id"], np.where(x["history_item"] > 0, ids[x["history_item"]], 0)
    )
    assert splits["train"].schema.vocab_sizes["item_id"] == 125
    assert len(pd.read_parquet(path)) == 25


@pytest.mark.parametrize("columns", ["microvideo", "kuaivideo", "ebnerd"])
def test_generated_files_have_the_layout_and_read_back(tmp_path, columns):
    truth = write_longctr_files(tmp_path, 300, columns=columns, num_items=60, max_history=120, seed=3)
    item_cols = {
        "microvideo": ["item_index", "item_id", "cate_id", "image_emb_dim64"],
        "kuaivideo": ["item_index", "item_id", "image_emb_dim64"],
        "ebnerd": ["item_index", "article_id", "category", "subcategory"],
    }[columns]
    label = "click" if columns == "ebnerd" else "is_click"
    items = pq.read_table(tmp_path / "item_info.parquet")
    assert items.column_names == item_cols and items.num_rows == 61
    assert pa.types.is_list(pq.read_schema(tmp_path / "user_info.parquet").field("full_item_seq").type)
    for name in item_cols[1:]:
        first = items.column(name).to_pylist()[0]
        assert not np.any(first), name  # row 0 is padding
    seqs = pq.read_table(tmp_path / "user_info.parquet").column("full_item_seq").to_pylist()
    splits = load_longctr(tmp_path, max_len=100)
    total = 0
    for split, file in (("train", "train"), ("validation", "valid"), ("test", "test")):
        table = pq.read_table(tmp_path / f"{file}.parquet")
        assert table.column_names[:4] == ["user_index", "item_index", "seq_len", label]
        assert all(table.schema.field(c).type == pa.int64() for c in table.column_names[:4])
        cols = {c: table.column(c).to_numpy() for c in ("user_index", "item_index", "seq_len", label)}
        x, y = splits[split].arrays()
        history = direct_history(seqs, cols["user_index"], cols["seq_len"], 100)
        np.testing.assert_array_equal(x["history_item"], history)
        np.testing.assert_array_equal(x["target_item"], cols["item_index"])
        np.testing.assert_array_equal(y, cols[label])
        assert len(truth[file]) == len(y)
        total += len(y)
    assert total == 300
    if columns == "ebnerd":
        assert set(EBNERD_ROWS) | set(EBNERD_BAGS) <= set(splits["train"].schema.features)
    else:
        assert splits["train"].schema.item_features == {"image_emb_dim64": Dense(64)}


def test_generated_signal_lies_beyond_the_last_50_events(tmp_path):
    truth = write_longctr_files(tmp_path, 4000, num_items=200, seed=1)
    test = pq.read_table(tmp_path / "test.parquet")
    labels = test.column("is_click").to_numpy()
    assert roc_auc(labels, truth["test"]) > 0.7  # the Bayes AUC is high
    # The target's category in the user's far history (beyond the last 50 events) predicts the click;
    # in the last 50 events it does not.
    seqs = pq.read_table(tmp_path / "user_info.parquet").column("full_item_seq").to_pylist()
    category = pq.read_table(tmp_path / "item_info.parquet").column("cate_id").to_numpy()
    users, items, lengths = (test.column(c).to_numpy() for c in ("user_index", "item_index", "seq_len"))
    far, near = [], []
    for u, i, n in zip(users, items, lengths, strict=True):
        history = category[np.asarray(seqs[u][:n])]
        far.append(np.mean(history[:-50] == category[i]))
        near.append(np.mean(history[-50:] == category[i]))
    assert roc_auc(labels, np.array(far)) > 0.6
    long_only = truth["test"] > 1 / (1 + np.exp(1.5 - 2.75))  # the far interests' targets
    assert np.mean(np.array(near)[long_only]) < 0.1 < np.mean(np.array(far)[long_only])


def test_generator_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`columns` must be one of"):
        write_longctr_files(tmp_path, 10, columns="taobao")
    with pytest.raises(ValueError, match="`max_history` must be an integer >= recent_window"):
        write_longctr_files(tmp_path, 10, max_history=60)
    with pytest.raises(ValueError, match="`splits` must be 3 fractions"):
        write_longctr_files(tmp_path, 10, splits=(0.5, 0.5, 0.5))


def roc_auc(labels, scores):
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
