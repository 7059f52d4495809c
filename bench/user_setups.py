"""Set-ups as users arrive with them: torchvision teachers saved as TorchScript, folders of PNGs.

  cross-domain  handwritten digits (scikit-learn's 8x8 digits, upscaled) + clothing (Fashion-MNIST),
                one teacher per domain, one unlabeled folder holding both domains' images
  tv-small      Fashion-MNIST halves at 32x32 RGB, a scripted ResNet-18 and a traced MobileNetV2,
                3,000 unlabeled images
  tv-vit        tv-small with a Vision Transformer (scripted, tapped at `encoder`: a class token
                and 8x8 patch tokens) as the first teacher instead of the ResNet

Teachers are trained here (the PyTorch wheel's torch (scripts/setup.sh), labels used only for them), then every student
is made and scored by the amalgam CLI exactly as a user would run it: `amalgamate` on the unlabeled
folder (with `--val-data`, a labeled validation folder of images no other split uses, where the
set-up has them), `eval` on a labeled test folder. Nothing here is a test; it prints a markdown
table and writes JSON.

usage: .venv/bin/python bench/user_setups.py AMALGAM OUT_DIR [--seeds 3] [--setups a,b]
       [--methods kd,routed-kd,cfl] [--threads 1] [--extra "FLAGS"] [--no-val] [--table]
       [--default-schedule]
Needs Debian's python3-sklearn (its digits file, which scripts/setup.sh installs) and the
wheel's torch/torchvision in .venv.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

FASHION = "/usr/share/datasets/fashion-mnist"
DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
FASHION_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                 "bag", "boot"]
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion(split):
    prefix = "train" if split == "train" else "t10k"
    return (read_idx(f"{FASHION}/{prefix}-images-idx3-ubyte.gz"),
            read_idx(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64))


def digits():
    if not os.path.exists(DIGITS):
        sys.exit(f"{DIGITS}: missing; the cross-domain set-up needs Debian's python3-sklearn "
                 "(apt-get install python3-sklearn)")
    table = np.loadtxt(DIGITS, delimiter=",")
    images = (table[:, :64].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return images, table[:, 64].astype(np.int64)


def to_rgb32(images):
    """uint8 [N,H,W] grey -> uint8 [N,32,32,3] (bilinear resize, grey replicated)."""
    x = torch.from_numpy(images).float().unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return x.clamp(0, 255).round().byte().repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()


def write_tree(root, images, names):
    """root/<name>/<i>.png; `names` per image."""
    for i, (image, name) in enumerate(zip(images, names)):
        os.makedirs(f"{root}/{name}", exist_ok=True)
        Image.fromarray(image).save(f"{root}/{name}/{i:05d}.png")


def train_teacher(model, images, labels, epochs, seed):
    """Adam + cosine, crop/flip-free: a teacher as a practitioner would quickly make it."""
    torch.manual_seed(seed)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - torch.tensor(MEAN).view(
        1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for b in range(0, len(x), 128):
            idx = order[b:b + 128]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def accuracy(model, images, labels):
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - torch.tensor(MEAN).view(
        1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = torch.cat([model(x[b:b + 512]).argmax(1) for b in range(0, len(x), 512)])
    return float((pred.numpy() == labels).mean())


def save_teacher(model, path, task, class_names, traced):
    example = torch.zeros(1, 3, 32, 32)
    script = torch.jit.trace(model, example) if traced else torch.jit.script(model)
    script.save(path)
    with open(path[:-3] + ".json", "w") as f:
        json.dump({"task": task, "class_names": class_names, "input_size": [32, 32],
                   "channels": 3, "mean": MEAN, "std": STD}, f)


def make_setup(name, out, threads):
    """Writes teachers (a.pt, b.pt + sidecars), transfer/ (unlabeled) and test/ (labeled)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if name == "cross-domain":
        d_img, d_lab = digits()
        order = rng.permutation(len(d_img))
        d_train, d_test = order[:1300], order[1300:]
        f_img, f_lab = fashion("train")
        f_train = rng.permutation(len(f_img))[:4000]
        ft_img, ft_lab = fashion("test")
        f_test = rng.permutation(len(ft_img))[:1000]
        tasks = [("digits", [f"digit{i}" for i in range(10)],
                  to_rgb32(d_img[d_train]), d_lab[d_train], to_rgb32(d_img[d_test]), d_lab[d_test]),
                 ("clothing", FASHION_NAMES, to_rgb32(f_img[f_train]), f_lab[f_train],
                  to_rgb32(ft_img[f_test]), ft_lab[f_test])]
        epochs = [15, 4]
    else:  # tv-small, tv-vit: Fashion halves, teachers trained on 12k labeled images, 3k transfer
        f_img, f_lab = fashion("train")
        order = rng.permutation(len(f_img))
        teach_idx, transfer_idx = order[:12000], order[12000:15000]
        ft_img, ft_lab = fashion("test")
        test_idx = rng.permutation(len(ft_img))[:2000]
        tasks = []
        for task, lo in (("a", 0), ("b", 5)):
            sel = teach_idx[(f_lab[teach_idx] >= lo) & (f_lab[teach_idx] < lo + 5)]
            tsel = test_idx[(ft_lab[test_idx] >= lo) & (ft_lab[test_idx] < lo + 5)]
            tasks.append((task, FASHION_NAMES[lo:lo + 5], to_rgb32(f_img[sel]), f_lab[sel] - lo,
                          to_rgb32(ft_img[tsel]), ft_lab[tsel] - lo))
        write_tree(f"{out}/transfer", to_rgb32(f_img[transfer_idx]),
                   ["unlabeled"] * len(transfer_idx))
        epochs = [15, 3] if name == "tv-vit" else [3, 3]
    record = {}
    for k, (task, names, x, y, xt, yt) in enumerate(tasks):
        torch.manual_seed(k)
        if k == 1:
            model = torchvision.models.mobilenet_v2(num_classes=len(names))
        elif name == "tv-vit":
            model = torchvision.models.VisionTransformer(
                image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64,
                mlp_dim=128, num_classes=len(names))
        else:
            model = torchvision.models.resnet18(num_classes=len(names))
        train_teacher(model, x, y, epochs[k], k)
        record[task] = accuracy(model, xt, yt)
        save_teacher(model, f"{out}/{'ab'[k]}.pt", task, names, traced=(k == 1))
        if name == "cross-domain":  # the transfer folder: both domains' training images
            write_tree(f"{out}/transfer", x, [f"{task}"] * len(x))
        write_tree(f"{out}/test", xt, [names[c] for c in yt])
    with open(f"{out}/teachers.json", "w") as f:
        json.dump(record, f)


def make_val(name, out):
    """Writes val/ (labeled, 2000 images) where the set-up has images no other split uses:
    tv-small and tv-vit take Fashion training images 15000-16999 of make_setup's permutation.
    cross-domain has none (every one of sklearn's 1797 digits is a teacher's or a test image).
    Returns the folder, or None."""
    if name == "cross-domain":
        return None
    if not os.path.exists(f"{out}/val"):
        f_img, f_lab = fashion("train")
        order = np.random.default_rng(0).permutation(len(f_img))  # make_setup's first draw
        val = order[15000:17000]
        write_tree(f"{out}/val", to_rgb32(f_img[val]), [FASHION_NAMES[c] for c in f_lab[val]])
    return f"{out}/val"


def run(cmd, log):
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")


def mean_std(values):
    v = [100.0 * x for x in values if x is not None]
    if not v:
        return "—"
    m = sum(v) / len(v)
    if len(v) == 1:
        return f"{m:.2f}"
    sd = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5
    return f"{m:.2f} ± {sd:.2f}"


def markdown(results):
    """One table per set-up: per-task accuracy, union, routing and the oracle-routing ceiling."""
    out = []
    for setup, rows in results.items():
        tasks = [t["name"] for t in rows["teachers"][0]["tasks"]]
        out.append(f"### {setup}\n")
        out.append("| row | " + " | ".join(tasks) + " | union | routing | union, oracle routing |")
        out.append("|---|" + "---:|" * (len(tasks) + 3))
        t = rows["teachers"][0]
        r = t["routing"]["teachers"]
        out.append("| teachers (concatenated logits) | " +
                   " | ".join(mean_std([x["teacher_acc"]]) for x in t["tasks"]) +
                   f" | {mean_std([r['concatenated']['union']])} | "
                   f"{mean_std([r['concatenated']['routing']])} | {mean_std([r['oracle_union']])} |")
        out.append(f"| teachers, calibrated routing | {' | '.join('—' for _ in tasks)} | "
                   f"{mean_std([r['calibrated']['union']])} | "
                   f"{mean_std([r['calibrated']['routing']])} | — |")
        for method, evals in rows.items():
            if method == "teachers":
                continue
            cols = [mean_std([e["tasks"][i]["student_acc"] for e in evals])
                    for i in range(len(tasks))]
            st = [e["routing"]["student"] for e in evals]
            out.append(f"| {method} ({len(evals)} seeds) | " + " | ".join(cols) +
                       f" | {mean_std([x['union'] for x in st])} | "
                       f"{mean_std([x['routing'] for x in st])} | "
                       f"{mean_std([x['oracle_union'] for x in st])} |")
        out.extend(paired_with_kd(rows, tasks))
        out.append("")
    return "\n".join(out)


# Two-sided 95% Student's t quantiles by degrees of freedom (1-10).
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def paired_with_kd(rows, tasks):
    """Rows of (method - kd) per task and union, seed by seed: mean [95% interval], points."""
    if "kd" not in rows:
        return []
    out = ["", "| minus kd, paired by seed | " + " | ".join(tasks) + " | union |",
           "|---|" + "---:|" * (len(tasks) + 1)]
    kd = rows["kd"]

    def scores(e):
        return [t["student_acc"] for t in e["tasks"]] + [e["routing"]["student"]["union"]]

    for method, evals in rows.items():
        if method in ("teachers", "kd"):
            continue
        n = min(len(evals), len(kd))
        if n == 0:
            continue
        cols = []
        for i in range(len(tasks) + 1):
            d = [100.0 * (scores(evals[s])[i] - scores(kd[s])[i]) for s in range(n)]
            m = sum(d) / n
            if n < 2:
                cols.append(f"{m:+.2f}")
                continue
            sd = (sum((x - m) ** 2 for x in d) / (n - 1)) ** 0.5
            h = T95[min(n - 2, len(T95) - 1)] * sd / n ** 0.5
            cols.append(f"{m:+.2f} [{m - h:+.2f}, {m + h:+.2f}]")
        out.append(f"| {method} ({n} seeds) | " + " | ".join(cols) + " |")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("amalgam")
    p.add_argument("out")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--setups", default="cross-domain,tv-small")
    p.add_argument("--methods", default="kd,routed-kd,cfl")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--extra", default="", help="more amalgamate flags for every student")
    p.add_argument("--table", action="store_true", help="only print OUT_DIR/results.json's tables")
    p.add_argument("--default-schedule", action="store_true",
                   help="give amalgamate no --epochs: its default budget (--min-steps) decides")
    p.add_argument("--no-val", action="store_true",
                   help="give amalgamate no labeled validation folder (no routing check)")
    a = p.parse_args()
    if a.table:
        print(markdown(json.load(open(f"{a.out}/results.json"))))
        return
    results = {}
    for setup in a.setups.split(","):
        out = f"{a.out}/{setup}"
        if not os.path.exists(f"{out}/teachers.json"):
            os.makedirs(out, exist_ok=True)
            make_setup(setup, out, a.threads)
        epochs = "4" if setup == "cross-domain" else "3"
        tap_a = "encoder" if setup == "tv-vit" else "layer4"
        teachers = ["--teacher", f"{out}/a.pt:{tap_a}", "--teacher", f"{out}/b.pt:features"]
        val = None if a.no_val else make_val(setup, out)
        val_flags = ["--val-data", val] if val else []
        rows = {}
        ev = f"{out}/eval_teachers.json"
        run([a.amalgam, "eval"] + teachers + ["--data", f"{out}/test", "--json", ev,
                                              "--threads", str(a.threads)], ev + ".log")
        rows["teachers"] = [json.load(open(ev))]
        for method in a.methods.split(","):
            rows[method] = []
            for seed in range(a.seeds):
                run_dir = f"{out}/runs/{method}-{seed}"
                shutil.rmtree(run_dir, ignore_errors=True)
                os.makedirs(f"{out}/runs", exist_ok=True)
                run([a.amalgam, "amalgamate"] + teachers +
                    ["--data", f"{out}/transfer", "--method", method, "--seed", str(seed),
                     "--threads", str(a.threads), "--out", run_dir] +
                    ([] if a.default_schedule else ["--epochs", epochs]) +
                    val_flags + a.extra.split(),
                    run_dir + ".log")
                ev = f"{run_dir}/eval.json"
                run([a.amalgam, "eval", "--student", f"{run_dir}/student.pt"] + teachers +
                    ["--data", f"{out}/test", "--json", ev, "--threads", str(a.threads)],
                    ev + ".log")
                rows[method].append(json.load(open(ev)))
        results[setup] = rows
        with open(f"{a.out}/results.json", "w") as f:
            json.dump(results, f, indent=1)
    print(markdown(results))


if __name__ == "__main__":
    main()
