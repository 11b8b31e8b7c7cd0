"""mspipe vs PyTorch Geometric's TGN on the shipped Wikipedia edges, alternated A B A B.

    python3 benches/peer/ab.py [--rounds 2] [--epochs 3] [--lr 1e-4]

Creates a throw-away venv with torch + torch_geometric from PyPI on first use (default
~/.cache/mspipe-peer/venv, or $MSPIPE_PEER_VENV), builds mspipe-train in release, then runs each
system `rounds` times in turn with the same epochs, learning rate, batch size (600) and 2 threads.
Prints one JSON object: every run's training events/s (mean over epochs) and test AP/AUC after the
last epoch, and the medians. Run it on a quiet machine: a concurrent build skews everything.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets" / "wikipedia" / "wikipedia.csv"


def venv_python():
    venv = pathlib.Path(os.environ.get("MSPIPE_PEER_VENV", pathlib.Path.home() / ".cache/mspipe-peer/venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch", "torch_geometric"], check=True)
    return python


def mspipe_binary():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "mspipe-train"], cwd=ROOT, check=True)
    return target / "release" / "mspipe-train"


def run_mspipe(binary, a):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([str(binary), "--dataset", str(DATA), "--epochs", str(a.epochs), "--lr", str(a.lr),
                        "--batch-size", "600", "--threads", "2", "--out", out, "--set", "train.patience=0"],
                       check=True, stdout=subprocess.DEVNULL)
        lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    return summarize(lines)


def run_pyg(python, a):
    out = subprocess.run([str(python), str(ROOT / "benches/peer/pyg_tgn.py"), "--data", str(DATA),
                          "--epochs", str(a.epochs), "--lr", str(a.lr), "--threads", "2"],
                         check=True, capture_output=True, text=True).stdout
    return summarize([json.loads(l) for l in out.splitlines() if l.startswith("{")])


def summarize(lines):
    last = lines[-1]
    return {"events_per_sec": statistics.mean(l["train_events_per_sec"] for l in lines),
            "test_ap": last["test_ap"], "test_auc": last["test_auc"],
            "test_ap_per_epoch": [l["test_ap"] for l in lines]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args()
    python, binary = venv_python(), mspipe_binary()
    runs = {"mspipe": [], "pyg": []}
    for r in range(a.rounds):
        for name, run in [("mspipe", lambda: run_mspipe(binary, a)), ("pyg", lambda: run_pyg(python, a))]:
            runs[name].append(run())
            print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    median = {k: {m: statistics.median(x[m] for x in v) for m in ("events_per_sec", "test_ap", "test_auc")}
              for k, v in runs.items()}
    ratio = median["mspipe"]["events_per_sec"] / median["pyg"]["events_per_sec"]
    print(json.dumps({"epochs": a.epochs, "lr": a.lr, "batch_size": 600, "threads": 2, "runs": runs,
                      "median": median, "speed_ratio": ratio,
                      "test_ap_difference_points": 100 * (median["mspipe"]["test_ap"] - median["pyg"]["test_ap"])}))


if __name__ == "__main__":
    main()
