"""The evaluation protocol mspipe's peers share with it: the stream file, TGN's chronological
70/15/15 split by timestamp quantiles, and AP/AUC as scikit-learn computes them (each peer reports
their means over evaluation batches, as TGN, TGL and MSPipe do).
"""

import argparse

import numpy as np


def average_precision(y, s):
    """sklearn's average_precision_score (step interpolation, ties as one threshold)."""
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    idx = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[idx]
    fps = 1 + idx - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y, s):
    """Mann-Whitney AUC with ties counted half."""
    # 1-based ranks, ties given their average rank (scipy's rankdata, without scipy).
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    end = np.cumsum(counts)
    r = ((end - counts + 1 + end) / 2)[inverse]
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores(pos, neg):
    """AP and AUC of one evaluation batch's positive and negative scores (NumPy arrays)."""
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    return average_precision(y, s), roc_auc(y, s)


def load(path):
    """`src,dst,t` columns of a CSV with a header, and the masks of TGN's split: validation and
    test cuts at the 0.70 and 0.85 quantiles of the timestamps, an event at a cut in the earlier
    part."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1, 2), ndmin=2)
    src, dst, t = raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), raw[:, 2]
    val_time, test_time = np.quantile(t, [0.70, 0.85])
    train = t <= val_time
    val = (t > val_time) & (t <= test_time)
    test = t > test_time
    return src, dst, t, train, val, test


def arguments(lr):
    """The arguments every peer takes (the stream file, epochs, learning rate, batch size, threads,
    seed), with the peer's default learning rate; a peer adds its own."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--batch-size", type=int, default=600)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p
