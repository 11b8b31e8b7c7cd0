"""PyTorch Geometric's TGN as a peer for mspipe: TGNMemory + IdentityMessage + LastAggregator,
LastNeighborLoader(10), one TransformerConv layer (2 heads), dims 100, Adam, batch 600, one random
negative destination per positive, chronological 70/15/15 split by time quantiles (TGN's).

Prints one JSON object per epoch on stdout: train events/s (training loop only) and val/test AP/AUC
(each the mean over evaluation batches).
Run by the benchmark suite (`cargo bench --bench suite`), which creates the throw-away venv; never
needed by cargo test.
"""

import json
import time

import numpy as np
import torch
from torch.nn import Linear
from torch_geometric.data import TemporalData
from torch_geometric.loader import TemporalDataLoader
from torch_geometric.nn import TGNMemory, TransformerConv
from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, LastNeighborLoader

import protocol


class GraphAttentionEmbedding(torch.nn.Module):
    def __init__(self, in_channels, out_channels, msg_dim, time_enc):
        super().__init__()
        self.time_enc = time_enc
        edge_dim = msg_dim + time_enc.out_channels
        self.conv = TransformerConv(in_channels, out_channels // 2, heads=2, dropout=0.1, edge_dim=edge_dim)

    def forward(self, x, last_update, edge_index, t, msg):
        rel_t = last_update[edge_index[0]] - t
        rel_t_enc = self.time_enc(rel_t.to(x.dtype))
        return self.conv(x, edge_index, torch.cat([rel_t_enc, msg], dim=-1))


class LinkPredictor(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.lin_src = Linear(channels, channels)
        self.lin_dst = Linear(channels, channels)
        self.lin_final = Linear(channels, 1)

    def forward(self, z_src, z_dst):
        return self.lin_final((self.lin_src(z_src) + self.lin_dst(z_dst)).relu())


def load(path, features=None):
    src, dst, t, train, val, test = protocol.load(path)
    if features is None:
        # No edge features: a one-wide zero message keeps PyG's modules well-formed.
        msg = torch.zeros(src.size, 1)
    else:
        # DyGLib's layout: row 0 pads, row i + 1 is event i's.
        msg = torch.from_numpy(np.load(features)[1:src.size + 1].astype(np.float32))
    data = TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t.astype(np.int64)), msg=msg)
    return data, data[torch.from_numpy(train)], data[torch.from_numpy(val)], data[torch.from_numpy(test)]


def main():
    p = protocol.arguments(lr=1e-4)
    p.add_argument("--features", help="edge features, a .npy in DyGLib's layout (a zero row first)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data, train_data, val_data, test_data = load(a.data, a.features)
    num_nodes = data.num_nodes
    msg_dim, memory_dim, time_dim, embedding_dim = data.msg.size(-1), 100, 100, 100
    memory = TGNMemory(num_nodes, msg_dim, memory_dim, time_dim,
                       message_module=IdentityMessage(msg_dim, memory_dim, time_dim),
                       aggregator_module=LastAggregator())
    gnn = GraphAttentionEmbedding(memory_dim, embedding_dim, msg_dim, memory.time_enc)
    link_pred = LinkPredictor(embedding_dim)
    params = set(memory.parameters()) | set(gnn.parameters()) | set(link_pred.parameters())
    optimizer = torch.optim.Adam(params, lr=a.lr)
    criterion = torch.nn.BCEWithLogitsLoss()
    neighbor_loader = LastNeighborLoader(num_nodes, size=10)
    assoc = torch.empty(num_nodes, dtype=torch.long)
    loaders = {name: TemporalDataLoader(d, batch_size=a.batch_size, neg_sampling_ratio=1.0)
               for name, d in [("train", train_data), ("val", val_data), ("test", test_data)]}

    def step(batch, train):
        n_id, edge_index, e_id = neighbor_loader(batch.n_id)
        assoc[n_id] = torch.arange(n_id.size(0))
        z, last_update = memory(n_id)
        z = gnn(z, last_update, edge_index, data.t[e_id], data.msg[e_id])
        pos = link_pred(z[assoc[batch.src]], z[assoc[batch.dst]])
        neg = link_pred(z[assoc[batch.src]], z[assoc[batch.neg_dst]])
        memory.update_state(batch.src, batch.dst, batch.t, batch.msg)
        neighbor_loader.insert(batch.src, batch.dst)
        return pos, neg

    @torch.no_grad()
    def evaluate(name):
        """AP and AUC per evaluation batch, averaged over batches (PyG's TGN example, TGN, TGL)."""
        memory.eval(); gnn.eval(); link_pred.eval()
        aps, aucs = [], []
        for batch in loaders[name]:
            pos, neg = step(batch, False)
            ap, auc = protocol.scores(pos.sigmoid().view(-1).numpy(), neg.sigmoid().view(-1).numpy())
            aps.append(ap)
            aucs.append(auc)
        return float(np.mean(aps)), float(np.mean(aucs))

    for epoch in range(1, a.epochs + 1):
        memory.train(); gnn.train(); link_pred.train()
        memory.reset_state(); neighbor_loader.reset_state()
        start = time.perf_counter()
        for batch in loaders["train"]:
            optimizer.zero_grad()
            pos, neg = step(batch, True)
            loss = criterion(pos, torch.ones_like(pos)) + criterion(neg, torch.zeros_like(neg))
            loss.backward()
            optimizer.step()
            memory.detach()
        seconds = time.perf_counter() - start
        val_ap, val_auc = evaluate("val")
        test_ap, test_auc = evaluate("test")
        print(json.dumps({"epoch": epoch, "train_seconds": seconds,
                          "train_events_per_sec": train_data.num_events / seconds,
                          "val_ap": val_ap, "val_auc": val_auc, "test_ap": test_ap, "test_auc": test_auc}),
              flush=True)


if __name__ == "__main__":
    main()
