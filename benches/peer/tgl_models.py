"""APAN and JODIE as TGL and MSPipe's released code train them, in plain PyTorch, as peers for
mspipe's models (`--model apan|jodie`).

Written from TGL's description of its modules (no DGL, no TGL). Both keep a node memory and a
mailbox per node, update each root's memory at the root's own time, and after each batch write the
positive endpoints' new memories (the last occurrence of a node wins) and mail each event's two
mails — [own new memory, other's new memory] at the event's time. TGL's TimeEncode (cos, trained
frequencies from 1/10^linspace(0, 9)) encodes time; TGL's `EdgePredictor` scores links.

- APAN: 10 mails per node; the memory attends over its mails ⊕ their ages (LeakyReLU(0.2) scores,
  2 heads), attention output + memory → LayerNorm → Linear → dropout → ReLU; the embedding is
  LayerNorm(new memory) (TGL's `IdentityNormLayer`). Mails also go to the 10 most recent
  neighbours (before the root's time) of each endpoint; a node keeps one mail per batch (the last
  delivered: endpoints' own mails first, then the neighbours' in root order, as TGL's
  `mail_combine: last`), written into its next slot. `--mask-empty` attends only over filled
  slots (what mspipe does); TGL attends over the zero-filled empty slots too.
- JODIE: one mail per node; an RNN cell over the mail ⊕ the encoded time since the memory's last
  update; the embedding is LayerNorm(new memory) ⊙ (1 + w·Δ + b), Δ = (t − t_mem)/(t + 1), w and b
  drawn from N(0, 1) (TGL's `JODIETimeEmbedding`).

Same protocol as mspipe's peer runs: TGN's chronological split, training negatives drawn uniformly
from the training period's distinct destinations, evaluation negatives from the whole stream's,
AP/AUC as the mean over evaluation batches; time counted from the stream's first event, as in
TGL's datasets.

Prints one JSON object per epoch on stdout, as `pyg_tgn.py` does. Run by the benchmark suite,
which creates the throw-away venv; never needed by cargo test.
"""

import json
import time

import numpy as np
import torch
from torch import nn

import protocol

MAILBOX = 10
NEIGHBOURS = 10


class TimeEncode(nn.Module):
    """cos(w·Δt + b), w initialised to 1/10^linspace(0, 9, dim), b to 0; both trained (TGL)."""

    def __init__(self, dim):
        super().__init__()
        self.w = nn.Linear(1, dim)
        with torch.no_grad():
            self.w.weight.copy_(torch.from_numpy(1 / 10 ** np.linspace(0, 9, dim, dtype=np.float32)).reshape(dim, 1))
            self.w.bias.zero_()

    def forward(self, dt):
        return torch.cos(self.w(dt.reshape(-1, 1))).reshape(*dt.shape, -1)


class MailboxUpdater(nn.Module):
    """TGL's `TransformerMemoryUpdater`."""

    def __init__(self, dim_mail, dim, dim_time, heads, dropout, att_dropout, mask_empty):
        super().__init__()
        self.heads, self.mask_empty = heads, mask_empty
        self.time_enc = TimeEncode(dim_time)
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim_mail + dim_time, dim)
        self.w_v = nn.Linear(dim_mail + dim_time, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.att_dropout = nn.Dropout(att_dropout)

    def forward(self, mem, mails, mail_ts, mail_valid, ts):
        n, slots, _ = mails.shape
        mails = torch.cat([mails, self.time_enc(ts[:, None] - mail_ts)], dim=2)
        q = self.w_q(mem).reshape(n, 1, self.heads, -1)
        k = self.w_k(mails).reshape(n, slots, self.heads, -1)
        v = self.w_v(mails).reshape(n, slots, self.heads, -1)
        att = nn.functional.leaky_relu((q * k).sum(dim=3), 0.2)
        if self.mask_empty:
            att = att.masked_fill(~mail_valid[:, :, None], float("-inf"))
        att = torch.softmax(att, dim=1)
        if self.mask_empty:
            att = torch.nan_to_num(att)  # a row with no mail attends to nothing
        att = self.att_dropout(att)
        out = (att[:, :, :, None] * v).sum(dim=1).reshape(n, -1) + mem
        return torch.relu(self.dropout(self.mlp(self.norm(out))))


class RnnUpdater(nn.Module):
    """TGL's `RNNMemeoryUpdater`: RNNCell(mail ⊕ time encoding of t − t_mem, memory)."""

    def __init__(self, dim_mail, dim, dim_time):
        super().__init__()
        self.time_enc = TimeEncode(dim_time)
        self.cell = nn.RNNCell(dim_mail + dim_time, dim)

    def forward(self, mem, mem_ts, mail, ts):
        return self.cell(torch.cat([mail[:, 0], self.time_enc(ts - mem_ts)], dim=1), mem)


class JodieProjection(nn.Module):
    """TGL's `JODIETimeEmbedding`: h ⊙ (1 + w·Δ + b), Δ = (t − t_mem)/(t + 1)."""

    def __init__(self, dim):
        super().__init__()
        self.w = nn.Linear(1, dim)
        with torch.no_grad():
            self.w.weight.normal_(0, 1)
            self.w.bias.normal_(0, 1)

    def forward(self, h, mem_ts, ts):
        return h * (1 + self.w(((ts - mem_ts) / (ts + 1))[:, None]))


class EdgePredictor(nn.Module):
    """TGL's: out(ReLU(src(h_src) + dst(h_dst)))."""

    def __init__(self, dim):
        super().__init__()
        self.src, self.dst, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, 1)

    def forward(self, h_src, h_dst):
        return self.out(torch.relu(self.src(h_src) + self.dst(h_dst))).view(-1)


class RecentNeighbours:
    """The `k` most recent neighbours of a node strictly before a time, over the whole stream's
    events in both directions (TGL's `recent` sampler on its T-CSR)."""

    def __init__(self, num_nodes, src, dst, t):
        nodes = np.concatenate([src, dst])
        other = np.concatenate([dst, src])
        times = np.concatenate([t, t])
        order = np.lexsort((np.concatenate([np.arange(t.size)] * 2), times, nodes))
        self.nbr, self.time = other[order], times[order]
        self.start = np.searchsorted(nodes[order], np.arange(num_nodes + 1))

    def sample(self, node, t, k):
        lo, hi = self.start[node], self.start[node + 1]
        end = lo + np.searchsorted(self.time[lo:hi], t, side="left")
        return self.nbr[max(lo, end - k):end]


class Memory:
    """Node memories and mailboxes, written only after a batch (one batch stale, as TGL)."""

    def __init__(self, num_nodes, dim, dim_mail, slots):
        self.slots = slots
        self.mem = torch.zeros(num_nodes, dim)
        self.mem_ts = torch.zeros(num_nodes)
        self.mail = torch.zeros(num_nodes, slots, dim_mail)
        self.mail_ts = torch.zeros(num_nodes, slots)
        self.mail_valid = torch.zeros(num_nodes, slots, dtype=torch.bool)
        self.next = torch.zeros(num_nodes, dtype=torch.long)

    def read(self, nodes):
        return (self.mem[nodes], self.mem_ts[nodes], self.mail[nodes], self.mail_ts[nodes],
                self.mail_valid[nodes])

    def write(self, src, dst, t, h, neighbours):
        """`h`: the batch's new memories, positive sources then destinations (then negatives);
        `neighbours`: per positive endpoint, the nodes its mail also goes to."""
        b = src.size
        h_src, h_dst = h[:b], h[b:2 * b]
        endpoints = np.concatenate([src, dst])
        mails = torch.cat([torch.cat([h_src, h_dst], 1), torch.cat([h_dst, h_src], 1)])
        times = torch.from_numpy(np.concatenate([t, t])).float()
        # Memories: the last occurrence of each endpoint.
        nodes, rows = last_occurrence(endpoints)
        self.mem[nodes] = h[:2 * b][rows]
        self.mem_ts[nodes] = times[rows]
        # Mails: own first, then each root's to its neighbours in root order; the last one wins.
        fan = [np.full(len(n), j) for j, n in enumerate(neighbours)]
        sender = np.concatenate([np.arange(2 * b)] + fan)
        target = np.concatenate([endpoints] + list(neighbours)).astype(np.int64)
        nodes, rows = last_occurrence(target)
        slot = self.next[nodes]
        self.mail[nodes, slot] = mails[sender[rows]]
        self.mail_ts[nodes, slot] = times[sender[rows]]
        self.mail_valid[nodes, slot] = True
        self.next[nodes] = (slot + 1) % self.slots


def last_occurrence(ids):
    """The distinct ids and, for each, the position of its last occurrence."""
    rev = ids[::-1]
    nodes, first = np.unique(rev, return_index=True)
    return torch.from_numpy(nodes), torch.from_numpy(ids.size - 1 - first)


def main():
    p = protocol.arguments(lr=1e-3)
    p.add_argument("--model", choices=["apan", "jodie"], default="apan")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--att-dropout", type=float, default=0.1)
    p.add_argument("--mask-empty", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    src, dst, t, train, val, test = protocol.load(a.data)
    t = t - t.min()  # TGL's streams count time from their first event (float32 keeps the resolution)
    num_nodes = int(max(src.max(), dst.max())) + 1
    dim = 100
    apan = a.model == "apan"
    if apan:
        updater = MailboxUpdater(2 * dim, dim, dim, 2, a.dropout, a.att_dropout, a.mask_empty)
    else:
        updater = RnnUpdater(2 * dim, dim, dim)
    # Made after the updater and before the predictor, as each model's modules are listed.
    projection = None if apan else JodieProjection(dim)
    norm = nn.LayerNorm(dim)
    predictor = EdgePredictor(dim)
    modules = nn.ModuleList([updater, norm, predictor] + ([] if apan else [projection]))
    optimizer = torch.optim.Adam(modules.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    sampler = RecentNeighbours(num_nodes, src, dst, t)
    candidates = {"train": np.unique(dst[train]), "eval": np.unique(dst)}
    eval_negatives = {name: rng.choice(candidates["eval"], size=int(m.sum())) for name, m in [("val", val), ("test", test)]}

    def batches(mask):
        idx = np.flatnonzero(mask)
        return [idx[i:i + a.batch_size] for i in range(0, idx.size, a.batch_size)]

    def step(memory, e, neg):
        b = e.size
        roots = np.concatenate([src[e], dst[e], neg])
        times = np.concatenate([t[e]] * 3)
        ts = torch.from_numpy(times).float()
        mem, mem_ts, mail, mail_ts, valid = memory.read(torch.from_numpy(roots))
        if apan:
            h = updater(mem, mail, mail_ts, valid, ts)
            z = norm(h)
            neighbours = [sampler.sample(n, time, NEIGHBOURS) for n, time in zip(roots[:2 * b], times[:2 * b])]
        else:
            h = updater(mem, mem_ts, mail, ts)
            z = projection(norm(h), mem_ts, ts)
            neighbours = [np.empty(0, dtype=np.int64)] * (2 * b)
        pos = predictor(z[:b], z[b:2 * b])
        negs = predictor(z[:b], z[2 * b:])
        return pos, negs, h.detach(), neighbours

    for epoch in range(1, a.epochs + 1):
        memory = Memory(num_nodes, dim, 2 * dim, MAILBOX if apan else 1)
        modules.train()
        start, losses = time.perf_counter(), []
        for e in batches(train):
            neg = rng.choice(candidates["train"], size=e.size)
            optimizer.zero_grad()
            pos, negs, h, neighbours = step(memory, e, neg)
            loss = loss_fn(pos, torch.ones_like(pos)) + loss_fn(negs, torch.zeros_like(negs))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            memory.write(src[e], dst[e], t[e], h, neighbours)
        seconds = time.perf_counter() - start
        modules.eval()
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "train_seconds": seconds, "train_events_per_sec": int(train.sum()) / seconds}
        with torch.no_grad():
            for name, mask in [("val", val), ("test", test)]:
                aps, aucs, offset = [], [], 0
                for e in batches(mask):
                    neg = eval_negatives[name][offset:offset + e.size]
                    offset += e.size
                    pos, negs, h, neighbours = step(memory, e, neg)
                    ap, auc = protocol.scores(torch.sigmoid(pos).numpy(), torch.sigmoid(negs).numpy())
                    aps.append(ap)
                    aucs.append(auc)
                    memory.write(src[e], dst[e], t[e], h, neighbours)
                record[f"{name}_ap"], record[f"{name}_auc"] = float(np.mean(aps)), float(np.mean(aucs))
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
