"""MovieLens ratings (ML-100K, ML-1M/10M, ML-20M/25M/latest) with genres as category."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from keras_lsrec.data.features import Categorical
from keras_lsrec.data.readers.table import (
    LoadReport,
    check_path,
    detect_header,
    finish_with_text_categories,
    floats,
    is_gzip,
    read_table,
)

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

MovieReader = Callable[[str], pd.DataFrame]  # a movie file -> columns item and genres (item as text)
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")


def load_movielens(
    path: str | os.PathLike[str], *, chunk_rows: int = 1_000_000, errors: str = "raise", progress: bool = True
) -> pd.DataFrame:
    """MovieLens ratings with genres as category, by file name:

    - `ratings.dat` (ML-1M/10M: `user::movie::rating::timestamp`) with `movies.dat` beside it;
    - `u.data` (ML-100K: tab-separated) with `u.item` beside it (19 genre flags);
    - `ratings.csv` (ML-latest, ML-20M/25M: header `userId,movieId,rating,timestamp`) with `movies.csv`.

    The category of a movie is its FIRST listed genre (`"(no genres listed)"`
    or a movie missing from the movie file: 0). Ids are read exactly at any
    size. Any of these files may be gzip-compressed (`ratings.csv.gz`, with
    `movies.csv` or `movies.csv.gz` beside it); the header of `ratings.csv` is
    recognised by content (a file without it loses no rating). Returns user,
    item, category, rating, timestamp.

    Every genre of a movie is also an item feature, a bag of genre ids:
    `events.attrs["item_features"] = {"genres": (Categorical(G + 1,
    max_values=M), table)}`, `table[i]` the genres of item `i` (ids
    1..G in the order of `events.attrs["item_feature_values"]["genres"]`,
    padded with 0; M the most genres a movie has), one row per item id
    (padding and OOV rows empty). The protocols (`dare_protocol`,
    `leave_last_out`) carry it into their datasets.
    """
    path = check_path(path)
    sep, header, movies_path, read_movies = _layout(path)
    report = LoadReport()
    if header:
        header = detect_header(path, sep, CSV_HEADER)
    columns = read_table(
        path,
        ("user", "item", "rating", "timestamp"),
        sep=sep,
        header=header,
        numeric=("user", "item", "timestamp"),
        ids=("user", "item"),
        strings=("rating",),
        chunk_rows=chunk_rows,
        report=report,
        errors=errors,
        progress=progress,
    )
    genres = _movie_genres(movies_path, read_movies)
    columns["rating"] = floats(columns["rating"])
    columns["category"] = np.array(
        [g[0] if (g := genres.get(int(i))) else "" for i in columns["item"]], object
    )
    frame = finish_with_text_categories(columns, report, path)
    names = sorted({g for movie in genres.values() for g in movie})
    if names:
        frame.attrs["item_features"] = {
            "genres": _genre_table(genres, names, frame.attrs["vocabularies"]["item"])
        }
        frame.attrs["item_feature_values"] = {"genres": np.array(names)}
    return frame


def _genre_table(
    genres: dict[int, list[str]], names: list[str], items: np.ndarray
) -> tuple[Categorical, np.ndarray]:
    """The genres item feature: its spec and its table, row = new item id (vocabulary order + 1)."""
    index = {name: i + 1 for i, name in enumerate(names)}
    lists = [[index[g] for g in genres.get(int(item), [])] for item in items]
    width = max(1, max((len(g) for g in lists), default=1))
    table = np.zeros((len(items) + 2, width), "int32")  # padding, the items, OOV
    for row, ids in enumerate(lists, start=1):
        table[row, : len(ids)] = ids
    return Categorical(len(names) + 1, max_values=width), table


def _layout(path: str) -> tuple[str, bool, str, MovieReader]:
    """(separator, header, movie file, its reader) of a ratings file, by the file's name."""
    name = os.path.basename(path).removesuffix(".gz")
    folder = os.path.dirname(path)

    def beside(movies: str) -> str:  # the movie file, or its gzip copy when only that exists
        plain = os.path.join(folder, movies)
        return plain if os.path.isfile(plain) or not os.path.isfile(plain + ".gz") else plain + ".gz"

    if name.endswith(".dat"):
        return "::", False, beside("movies.dat"), _read_movies_dat
    if name == "u.data":
        return "\t", False, beside("u.item"), _read_ml100k_items
    if name.endswith(".csv"):
        return ",", True, beside("movies.csv"), _read_movies_csv
    raise ValueError(
        f"Unknown MovieLens file {name!r}: expected ratings.dat, u.data or ratings.csv (or one of them .gz)"
    )


def _movie_genres(path: str, read: MovieReader) -> dict[int, list[str]]:
    """`{movie: its genres, in the file's order}` for the movies that have one; `{}` (with a
    warning) without the file."""
    if not os.path.isfile(path):
        warnings.warn(f"{path} not found: every category is 0", stacklevel=3)
        return {}
    movies = read(path)
    out = {}
    for item, genres in zip(movies["item"], movies["genres"], strict=True):
        listed = [g for g in str(genres).split("|") if g and g != "(no genres listed)"]
        if listed:
            text = str(item).strip()
            if not text.lstrip("+-").isdigit():
                raise ValueError(f"{path}: movie id {text!r} (genres {genres!r}) is not an integer")
            out[int(text)] = listed  # the id's text, read exactly
    return out


def _compression(path: str) -> str | None:
    return "gzip" if is_gzip(path) else None


def _read_movies_csv(path: str) -> pd.DataFrame:
    """`movies.csv` (ML-latest, ML-20M/25M): header `movieId,title,genres`."""
    table = pd.read_csv(path, dtype={"movieId": str}, keep_default_na=False, compression=_compression(path))
    return table.rename(columns={"movieId": "item"})


def _read_movies_dat(path: str) -> pd.DataFrame:
    """`movies.dat` (ML-1M/10M): `movie::title::genre|genre`, latin-1."""
    return pd.read_csv(
        path,
        sep="::",
        engine="python",
        header=None,
        names=["item", "title", "genres"],
        dtype={"item": str},
        encoding="latin-1",
        compression=_compression(path),
    )


def _read_ml100k_items(path: str) -> pd.DataFrame:
    """`u.item` (ML-100K): `movie|title|...|` then 19 genre flags (the first, "unknown", is no genre)."""
    table = pd.read_csv(
        path, sep="|", header=None, dtype={0: str}, encoding="latin-1", compression=_compression(path)
    )
    flags = table.iloc[:, 5:24].to_numpy()
    genres = ["|".join(g for g, f in zip(ML100K_GENRES[1:], row[1:], strict=True) if f) for row in flags]
    return pd.DataFrame({"item": table[0], "genres": genres})
