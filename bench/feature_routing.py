"""Label-free routing scores from the teachers' features, beside the energy score amalgam uses.

For a set-up made by bench/user_setups.py (OUT_DIR/SETUP with a.pt, b.pt, transfer/, test/):
each teacher's pooled features at amalgam's tap (ResNet layer4, MobileNetV2 features, ViT encoder
patch tokens) on the transfer and test folders; per teacher a score of "this image is mine"
(energy; k-nearest-neighbour distance to the transfer images its calibrated energy routes to it
most confidently; class-conditional Mahalanobis distance to the same images; the feature norm);
each score calibrated to equal task shares on the transfer set as amalgam calibrates the energy.
Prints the test-folder routing accuracy and each teacher's AUROC (own-task test images vs the
others), and the correlation of the two teachers' energies over the transfer set (the label-free
agreement amalgam checks). Labels are read only to score.

usage: .venv/bin/python bench/feature_routing.py OUT_DIR SETUP   (SETUP: cross-domain, tv-small,
       tv-vit)
"""
import sys, os, glob, json
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
torch.set_num_threads(2)
MEAN = torch.tensor([0.5]*3).view(1,3,1,1); STD = torch.tensor([0.25]*3).view(1,3,1,1)

def load_folder(root):
    xs, names = [], []
    for d in sorted(os.listdir(root)):
        for f in sorted(glob.glob(f"{root}/{d}/*.png")):
            xs.append(np.array(Image.open(f).convert("RGB"))); names.append(d)
    x = torch.from_numpy(np.stack(xs)).permute(0,3,1,2).float()/255.0
    return (x - MEAN)/STD, names

def taps(m, x, kind):
    if kind == "resnet":
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
        return h.mean((2,3)), m(x)
    if kind == "mobilenet":
        h = m.features(x); return h.mean((2,3)), m(x)
    if kind == "vit":
        h = m._process_input(x)
        h = torch.cat([m.class_token.expand(h.shape[0], -1, -1), h], 1)
        h = m.encoder(h)
        return h[:, 1:].mean(1), m(x)   # patch tokens pooled (amalgam drops the class token)

def run(m, x, kind):
    f, l = [], []
    with torch.no_grad():
        for b in range(0, len(x), 256):
            a, c = taps(m, x[b:b+256], kind); f.append(a); l.append(c)
    return torch.cat(f), torch.cat(l)

def energy(l, T):  return T*torch.logsumexp(l/T, 1)

def calibrate(s, prior, iters=200):
    b = torch.zeros(s.shape[1])
    for _ in range(iters):
        p = torch.softmax(s + b, 1).mean(0)
        b = b + torch.log(torch.tensor(prior)) - torch.log(p)
        b = b - b.mean()
    return b

def auroc(score, pos):
    s = score.numpy(); p = pos.numpy().astype(bool)
    order = s.argsort(); ranks = np.empty(len(s)); ranks[order] = np.arange(len(s))
    n1, n0 = p.sum(), (~p).sum()
    return (ranks[p].sum() - n1*(n1-1)/2) / (n1*n0)

def knn_score(f_ref, f, k=10):
    a = F.normalize(f_ref, dim=1); q = F.normalize(f, dim=1)
    d = torch.cdist(q, a)  # [N,R]
    return -d.topk(k, 1, largest=False).values[:, -1]

def maha_score(f_ref, cls_ref, f):
    mus = []; cen = []
    for c in cls_ref.unique():
        fc = f_ref[cls_ref == c]; mu = fc.mean(0); mus.append(mu); cen.append(fc - mu)
    cen = torch.cat(cen); cov = cen.T @ cen / len(cen) + 1e-3*torch.eye(f.shape[1])
    P = torch.linalg.inv(cov); mus = torch.stack(mus)
    d = torch.stack([((f-mu) @ P * (f-mu)).sum(1) for mu in mus], 1)
    return -d.min(1).values

setup = sys.argv[2]; root = f"{sys.argv[1]}/{setup}"
kinds = ["vit" if setup == "tv-vit" else "resnet", "mobilenet"]
tasks = json.load(open(f"{root}/a.json"))["class_names"], json.load(open(f"{root}/b.json"))["class_names"]
xt, _ = load_folder(f"{root}/transfer")
xe, names = load_folder(f"{root}/test")
truth = torch.tensor([0 if n in tasks[0] else 1 for n in names])
ms = [torch.jit.load(f"{root}/{c}.pt").eval() for c in "ab"]
FT, LT, FE, LE = [], [], [], []
for m, k in zip(ms, kinds):
    a, b = run(m, xt, k); FT.append(a); LT.append(b)
    a, b = run(m, xe, k); FE.append(a); LE.append(b)
prior = [0.5, 0.5]
Ts = [2.5*l.std().item() for l in LT]
res = {}
def report(name, st, se):
    """st, se: [N,T] scores on transfer / test (higher = mine); calibrated on transfer."""
    zt = (st - st.mean(0)) / st.std(0); ze = (se - st.mean(0)) / st.std(0)
    b = calibrate(zt, prior)
    acc = ((ze + b).argmax(1) == truth).float().mean().item()
    au = [auroc(se[:, i], truth == i) for i in range(2)]
    res[name] = (acc, au)
    print(f"{setup:13s} {name:34s} routing {100*acc:6.2f}  AUROC a {au[0]:.3f} b {au[1]:.3f}", flush=True)
    return zt

E_t = torch.stack([energy(l, T) for l, T in zip(LT, Ts)], 1)
E_e = torch.stack([energy(l, T) for l, T in zip(LE, Ts)], 1)
report("energy", E_t, E_e)
# reference sets: energy-confident share per teacher (calibrated)
zt = (E_t - E_t.mean(0)) / E_t.std(0); b = calibrate(zt, prior); r = torch.softmax(zt + b, 1)
for k in (5, 20):
    for share in (0.2, 0.4):
        Kt, Ke = [], []
        for i in range(2):
            thr = r[:, i].quantile(1 - share); ref = FT[i][r[:, i] >= thr]
            Kt.append(knn_score(ref, FT[i], k)); Ke.append(knn_score(ref, FE[i], k))
        report(f"knn k{k} ref energy-top{share}", torch.stack(Kt, 1), torch.stack(Ke, 1))
# kNN to the whole transfer set (density in each teacher's space)
Kt, Ke = [], []
for i in range(2):
    Kt.append(knn_score(FT[i], FT[i], 11)); Ke.append(knn_score(FT[i], FE[i], 10))
report("knn k10 ref all transfer", torch.stack(Kt, 1), torch.stack(Ke, 1))
for share in (0.4, 1.0):
    Mt, Me = [], []
    for i in range(2):
        thr = r[:, i].quantile(1 - share) if share < 1 else -1
        sel = r[:, i] >= thr
        ref, cls = FT[i][sel], LT[i][sel].argmax(1)
        Mt.append(maha_score(ref, cls, FT[i])); Me.append(maha_score(ref, cls, FE[i]))
    report(f"mahalanobis ref energy-top{share}", torch.stack(Mt, 1), torch.stack(Me, 1))
# feature norm
report("feature norm", torch.stack([f.norm(dim=1) for f in FT], 1), torch.stack([f.norm(dim=1) for f in FE], 1))
def corr(a, b):
    a = (a - a.mean())/a.std(); b = (b - b.mean())/b.std(); return (a*b).mean().item()
def rank(a): return a.argsort().argsort().float()
print(f"{setup} energy corr transfer pearson {corr(E_t[:,0],E_t[:,1]):+.3f} spearman {corr(rank(E_t[:,0]),rank(E_t[:,1])):+.3f}; test {corr(E_e[:,0],E_e[:,1]):+.3f}")
ml = torch.stack([l.max(1).values for l in LT],1)
print(f"{setup} maxlogit corr {corr(ml[:,0],ml[:,1]):+.3f}")
# concatenated routing accuracy on test
cat = torch.cat(LE, 1).argmax(1); k0 = LE[0].shape[1]
print(f"{setup} concatenated routing {100*((cat >= k0).long() == truth).float().mean():.2f}")
