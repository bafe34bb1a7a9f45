"""MovieLens ratings (ML-100K, ML-1M/10M, ML-20M/25M/latest) with genres as category."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from keras_lsrec.data.readers.table import (
    LoadReport,
    check_path,
    finish_with_text_categories,
    floats,
    read_table,
)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

MovieReader = Callable[[str], pd.DataFrame]  # a movie file -> columns item (or movieId) and genres


def load_movielens(
    path: str | os.PathLike[str], *, chunk_rows: int = 1_000_000, errors: str = "raise", progress: bool = True
) -> pd.DataFrame:
    """MovieLens ratings with genres as category, by file name:

    - `ratings.dat` (ML-1M/10M: `user::movie::rating::timestamp`) with `movies.dat` beside it;
    - `u.data` (ML-100K: tab-separated) with `u.item` beside it (19 genre flags);
    - `ratings.csv` (ML-latest, ML-20M/25M: header `userId,movieId,rating,timestamp`) with `movies.csv`.

    The category of a movie is its FIRST listed genre (`"(no genres listed)"`
    or a movie missing from the movie file: 0). Returns user, item, category,
    rating, timestamp.
    """
    path = check_path(path)
    sep, header, movies_path, read_movies = _layout(path)
    report = LoadReport()
    columns = read_table(
        path, ("user", "item", "rating", "timestamp"), sep=sep, header=header,
        numeric=("user", "item", "timestamp"), strings=("rating",),
        chunk_rows=chunk_rows, report=report, errors=errors, progress=progress,
    )
    genres = _movie_genres(movies_path, read_movies)
    columns["rating"] = floats(columns["rating"])
    columns["category"] = np.array([genres.get(int(i), "") for i in columns["item"]], dtype=object)
    return finish_with_text_categories(columns, report, path)


def _layout(path: str) -> tuple[str, bool, str, MovieReader]:
    """(separator, header, movie file, its reader) of a ratings file, by the file's name."""
    name = os.path.basename(path)
    folder = os.path.dirname(path)
    if name.endswith(".dat"):
        return "::", False, os.path.join(folder, "movies.dat"), _read_movies_dat
    if name == "u.data":
        return "\t", False, os.path.join(folder, "u.item"), _read_ml100k_items
    if name.endswith(".csv"):
        return ",", True, os.path.join(folder, "movies.csv"), pd.read_csv
    raise ValueError(f"Unknown MovieLens file {name!r}: expected ratings.dat, u.data or ratings.csv")


def _movie_genres(path: str, read: MovieReader) -> dict[int, str]:
    """`{movie: first genre}` for the movies that have one; `{}` (with a warning) without the file."""
    if not os.path.isfile(path):
        warnings.warn(f"{path} not found: every category is 0", stacklevel=3)
        return {}
    movies = read(path)
    out = {}
    items = movies["item"] if "item" in movies else movies["movieId"]
    for item, genres in zip(items, movies["genres"], strict=True):
        first = str(genres).split("|")[0]
        if first and first != "(no genres listed)":
            out[int(item)] = first
    return out


def _read_movies_dat(path: str) -> pd.DataFrame:
    """`movies.dat` (ML-1M/10M): `movie::title::genre|genre`, latin-1."""
    return pd.read_csv(path, sep="::", engine="python", header=None, names=["item", "title", "genres"],
                       encoding="latin-1")


def _read_ml100k_items(path: str) -> pd.DataFrame:
    """`u.item` (ML-100K): `movie|title|...|` then 19 genre flags (the first, "unknown", is no genre)."""
    table = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
    flags = table.iloc[:, 5:24].to_numpy()
    genres = ["|".join(g for g, f in zip(ML100K_GENRES[1:], row[1:], strict=True) if f) for row in flags]
    return pd.DataFrame({"item": table[0], "genres": genres})
