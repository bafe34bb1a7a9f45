"""Fixtures shared by the data tests."""

import numpy as np
import pandas as pd
import pytest


def synthetic_events(num_users=6, length=230, num_items=400, seed=0):
    """Events with strictly increasing timestamps per user; item i has category i % 7 + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, num_users + 1):
        n = length + user  # different lengths
        items = rng.integers(1, num_items // 2, n)  # users only see the lower half of the items
        times = np.cumsum(rng.integers(1, 100, n))
        rows += [(user, int(i), int(i % 7 + 1), int(t)) for i, t in zip(items, times, strict=True)]
    rows.append((num_users + 1, 5, 6, 1))  # a short user: left out
    frame = pd.DataFrame(rows, columns=["user", "item", "category", "timestamp"])
    # Popular unseen items exist (upper half): give them events from a throwaway user.
    unseen = np.arange(num_items // 2, num_items)
    extra = pd.DataFrame({"user": num_users + 2, "item": unseen, "timestamp": 0})
    extra["category"] = extra["item"] % 7 + 1
    events = pd.concat([frame, extra[frame.columns]], ignore_index=True)
    return events.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)


@pytest.fixture
def make_events():
    """`make_events(num_users=6, length=230, num_items=400, seed=0)`: a loader-like events table
    (see `synthetic_events`)."""
    return synthetic_events
