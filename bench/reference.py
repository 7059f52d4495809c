"""Reference implementation of amalgam's CFL training loop in plain PyTorch (the pinned wheel's
torch in .venv), written the way a practitioner would: the same architectures, objective,
optimizer, schedule, batch size and threads, teachers run under no_grad on every batch.

It reads the state `amalgam bench --state FILE` wrote (initial weights, transfer images, the
batches and loss terms of amalgam's first steps), checks that it computes the same loss terms from
the same weights and batches, then times its own epochs and counts the FLOPs of a training step.

usage: python3 reference.py STATE.pt AMALGAM.json [--json OUT] [--threads N] [--precision bf16]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----- the zoo architectures (same module names as amalgam's C++ modules) -----
class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x):
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride, True)
        self.conv2 = ConvBN(cout, cout, 3, 1, False)
        self.shortcut = ConvBN(cin, cout, 1, stride, False) if stride != 1 or cin != cout else None

    def forward(self, x):
        identity = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(self.conv2(self.conv1(x)) + identity)


class ZooNetwork(nn.Module):
    def __init__(self, spec):
        super().__init__()
        inp = spec["input"]
        c = inp["channels"]
        self.register_buffer("input_mean", torch.tensor(inp["mean"]).view(1, c, 1, 1))
        self.register_buffer("input_std", torch.tensor(inp["std"]).view(1, c, 1, 1))
        width, depth, stages = spec["width"], spec["depth"], spec["stages"]
        layers = []
        if spec["arch"] == "resnet":
            layers.append(ConvBN(c, width, 3, 1, True))
            ch = width
            for stage in range(stages):
                out = width << stage
                for block in range(depth):
                    layers.append(BasicBlock(ch, out, 2 if stage > 0 and block == 0 else 1))
                    ch = out
        elif spec["arch"] == "vgg":
            ch = c
            for stage in range(stages):
                if stage > 0:
                    layers.append(nn.MaxPool2d(2, ceil_mode=True))
                out = width << stage
                for _ in range(depth):
                    layers.append(ConvBN(ch, out, 3, 1, True))
                    ch = out
        else:
            raise SystemExit(f"reference: architecture {spec['arch']} not implemented")
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch, spec["num_classes"])

    def forward(self, images):
        f = self.body((images - self.input_mean) / self.input_std)
        return f, self.head(F.adaptive_avg_pool2d(f, 1).flatten(1))


# ----- the common feature block and the objective -----
def conv(cin, cout, k):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ResidualUnit(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(conv(cin, cout, 3), nn.ReLU(True), conv(cout, cout, 3))
        self.shortcut = nn.Sequential(conv(cin, cout, 1)) if cin != cout else None

    def forward(self, x):
        return F.relu(self.body(x) + (self.shortcut(x) if self.shortcut is not None else x))


def resize(x, h, w):
    if x.shape[2] == h and x.shape[3] == w:
        return x
    if x.shape[2] >= h and x.shape[3] >= w:
        return F.adaptive_avg_pool2d(x, (h, w))
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


class CommonFeatureBlock(nn.Module):
    def __init__(self, teacher_shapes, student_shape, h, blocks):
        super().__init__()
        self.teacher_shapes, self.student_shape = teacher_shapes, student_shape
        self.teacher_align = nn.ModuleList(
            nn.Sequential(conv(s[0], 2 * h, 1), nn.ReLU(True)) for s in teacher_shapes)
        self.decoders = nn.ModuleList(
            nn.Sequential(conv(h, h, 3), nn.ReLU(True), conv(h, s[0], 1)) for s in teacher_shapes)
        self.student_align = nn.Sequential(conv(student_shape[0], 2 * h, 1), nn.ReLU(True))
        self.extractor = nn.Sequential(ResidualUnit(2 * h, h),
                                       *[ResidualUnit(h, h) for _ in range(blocks - 1)])

    def student_common(self, f):
        return self.extractor(self.student_align(f))

    def teacher_common(self, i, f):
        return self.extractor(self.teacher_align[i](resize(f, *self.student_shape[1:])))

    def reconstruct(self, i, h):
        return resize(self.decoders[i](h), *self.teacher_shapes[i][1:])


def mmd(x, y, sigmas):
    n = x.shape[0]
    z = torch.cat([F.normalize(x.flatten(1), dim=1, eps=1e-12),
                   F.normalize(y.flatten(1), dim=1, eps=1e-12)])
    gram = z @ z.t()
    sq = gram.diagonal()
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * gram).clamp_min(0)
    k = sum(torch.exp(d2 * (-1.0 / (2 * s * s))) for s in sigmas)
    return (k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()).clamp_min(0)


def loss_terms(cfg, student_out, teacher_outs, block):
    t = cfg["temperature"]
    f_s, logits = student_out
    targets = torch.softmax(torch.cat([o[1] for o in teacher_outs], 1) / t, 1)
    kd = t * t * -(targets * torch.log_softmax(logits / t, 1)).sum(1).mean()
    h_s = block.student_common(f_s)
    m = torch.zeros(())
    r = torch.zeros(())
    for i, (f_i, _) in enumerate(teacher_outs):
        h_i = block.teacher_common(i, f_i)
        m = m + mmd(h_s, h_i, cfg["sigmas"])
        r = r + F.mse_loss(block.reconstruct(i, h_i), f_i)
    total = cfg["lambda_kd"] * kd + cfg["lambda_cf"] * (m + cfg["beta"] * r)
    return {"total": total, "kd": kd, "mmd": m, "recon": r}


# ----- set-up from amalgam's state -----
def load(module, state, prefix):
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(own, strict=True)


def build(state, cfg, channels_last=False):
    teachers = []
    for i, spec in enumerate(cfg["teacher_specs"]):
        t = ZooNetwork(spec)
        load(t, state, f"teacher{i}.")
        teachers.append(t.eval().requires_grad_(False))
    student = ZooNetwork(cfg["student"])
    load(student, state, "student.")
    x = torch.zeros(1, *state["transfer_images"].shape[1:])
    with torch.no_grad():
        s_shape = list(student.eval()(x)[0].shape[1:])
        t_shapes = [list(t(x)[0].shape[1:]) for t in teachers]
    block = CommonFeatureBlock(t_shapes, s_shape, cfg["common_channels"], cfg["extractor_blocks"])
    load(block, state, "block.")
    if channels_last:
        student.to(memory_format=torch.channels_last)
        block.to(memory_format=torch.channels_last)
    head = list(student.head.parameters())
    head_ids = {id(p) for p in head}
    groups = [{"params": [p for p in student.parameters() if id(p) not in head_ids], "mult": 1.0},
              {"params": head, "mult": cfg["head_lr_mult"]},
              {"params": list(block.parameters()), "mult": cfg["block_lr_mult"]}]
    for g in groups:
        g["lr"] = cfg["lr"] * g["mult"]
    opt = torch.optim.Adam(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return teachers, student, block, opt


def step(cfg, teachers, student, block, opt, images, global_step, total_steps,
         channels_last=False, bf16=False):
    """One training step; with bf16, the forward runs under torch.autocast as the PyTorch
    documentation shows it (weights and optimizer state stay float32)."""
    factor = 0.5 * (1 + math.cos(math.pi * min(global_step, total_steps) / total_steps))
    for g in opt.param_groups:
        g["lr"] = cfg["lr"] * g["mult"] * factor
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with torch.no_grad():
            teacher_outs = [t(images) for t in teachers]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
            teacher_outs = [(f.contiguous(memory_format=torch.channels_last), l)
                            for f, l in teacher_outs]
        opt.zero_grad()
        terms = loss_terms(cfg, student(images), teacher_outs, block)
    terms["total"].backward()
    opt.step()
    return {k: v.item() for k, v in terms.items()}


def count_step_flops(student, block, teachers, images):
    """Multiply-adds of conv and linear layers in one forward, x2 for FLOPs; a training step is
    counted as 3x the forward of the student and block (backward ~ twice the forward)."""
    flops = {"n": 0}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            flops["n"] += 2 * output.numel() * k
        elif isinstance(module, nn.Linear):
            flops["n"] += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in list(student.modules()) + list(block.modules())
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        f_s, _ = student(images)
        h_s = block.student_common(f_s)
        for i, t in enumerate(teachers):
            f_i, _ = t(images)
            block.reconstruct(i, block.teacher_common(i, f_i))
    for h in handles:
        h.remove()
    return 3 * flops["n"]


def count_teacher_flops(teachers, images):
    """FLOPs of the teachers' forward passes on one batch (conv and linear layers)."""
    flops = {"n": 0}

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups \
            if isinstance(module, nn.Conv2d) else module.in_features
        flops["n"] += 2 * output.numel() * k

    handles = [m.register_forward_hook(hook) for t in teachers for m in t.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for t in teachers:
            t(images)
    for h in handles:
        h.remove()
    return flops["n"]


PROFILE_CATEGORIES = [  # (category, test on an operator name), first match wins
    ("convolution backward", lambda n: "conv" in n and "backward" in n),
    ("convolution forward", lambda n: "conv" in n),
    ("batch norm", lambda n: "batch_norm" in n),
    ("dtype casts and copies", lambda n: n in ("aten::copy_", "aten::_to_copy", "aten::to")),
    ("GEMM", lambda n: n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
    ("pooling and resizing", lambda n: "pool" in n or "upsample" in n),
]


def profile_steps(cfg, state, images_u8, batch, total_steps, bf16, steps):
    """Self CPU time of `steps` training steps by operator category (PyTorch's profiler), and
    the inclusive share of the optimizer step: where a step's time goes besides convolutions."""
    teachers, student, block, opt = build(state, cfg)
    student.train()
    block.train()
    batches = [images_u8[k * batch:(k + 1) * batch].float() / 255.0 for k in range(steps + 2)]
    for k in range(2):  # warm-up: oneDNN primitives created, allocator primed
        step(cfg, teachers, student, block, opt, batches[k], k, total_steps, bf16=bf16)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for k in range(steps):
            step(cfg, teachers, student, block, opt, batches[k + 2], k + 2, total_steps, bf16=bf16)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {name: 0.0 for name, _ in PROFILE_CATEGORIES}
    shares["everything else"] = 0.0
    for e in events:
        name = next((c for c, test in PROFILE_CATEGORIES if test(e.key)), "everything else")
        shares[name] += e.self_cpu_time_total / total
    optimizer = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]
    return {"precision": "bf16" if bf16 else "fp32", "steps": steps,
            "seconds_per_step": total / 1e6 / steps,
            "categories": [{"name": n, "share": v} for n, v in
                           sorted(shares.items(), key=lambda kv: -kv[1])],
            "optimizer_step_share": optimizer / total,
            "top_operators": [{"name": e.key, "share": e.self_cpu_time_total / total}
                              for e in top]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("amalgam_json")
    ap.add_argument("--json")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: also time the loop under torch.autocast")
    ap.add_argument("--profile", type=int, default=0,
                    help="profile this many steps at the precision given (0 = no profile)")
    args = ap.parse_args()
    ours = json.load(open(args.amalgam_json))
    threads = args.threads or ours["threads"]
    torch.set_num_threads(threads)
    # Written by `amalgam bench` a moment ago; it holds TorchScript type tags, which PyTorch 2.6+
    # refuses under its weights_only default.
    state = torch.load(args.state, weights_only=False)
    cfg = ours["config"]
    images_u8 = state["transfer_images"]
    batch, epochs = ours["batch_size"], ours["epochs"]
    steps_per_epoch = images_u8.shape[0] // batch
    total_steps = epochs * steps_per_epoch

    # 1. Same weights, same batches, same memory layout: the same loss terms as amalgam's first
    # steps. (Adam turns rounding differences in near-zero gradients into full-size steps, so
    # only the same kernels agree beyond the first step.)
    layout = cfg.get("channels_last", False)
    teachers, student, block, opt = build(state, cfg, layout)
    student.train()
    block.train()
    # torch.optim.Adam (Python, PyTorch >= 2.0) updates its moments with lerp_, LibTorch's C++
    # Adam with mul_ and add_: the same arithmetic while the moments start from zero (the first
    # update), rounding apart from the second. Steps 0 and 1 (losses before the first and second
    # updates) must agree bitwise; later steps are reported apart (measured 6.6e-6 at step 2).
    worst = later = 0.0
    rows = []
    for k, expected in enumerate(ours["check_steps"]):
        images = images_u8[state["check_indices"][k]].float() / 255.0
        got = step(cfg, teachers, student, block, opt, images, k, total_steps, layout)
        for name in ("total", "kd", "mmd", "recon"):
            rel = abs(got[name] - expected[name]) / max(abs(expected[name]), 1e-12)
            if k < 2:
                worst = max(worst, rel)
            else:
                later = max(later, rel)
        rows.append({"step": k, "reference": got, "amalgam": {n: expected[n] for n in got}})

    # 2. Timed epochs from the same initial weights: the plain loop a practitioner writes
    # (default layout, teachers on every batch), at FP32 and, with --precision bf16, again under
    # torch.autocast (the same-precision comparison).
    teachers, student, block, opt = build(state, cfg)
    flops_per_step = count_step_flops(student, block, teachers,
                                      images_u8[:batch].float() / 255.0)
    timed = {}
    for precision in ["fp32"] + (["bf16"] if args.precision == "bf16" else []):
        teachers, student, block, opt = build(state, cfg)
        student.train()
        block.train()
        g = torch.Generator().manual_seed(0)
        epoch_seconds = []
        global_step = 0
        for epoch in range(epochs):
            start = time.perf_counter()
            order = torch.randperm(images_u8.shape[0], generator=g)
            for s in range(steps_per_epoch):
                images = images_u8[order[s * batch:(s + 1) * batch]].float() / 255.0
                step(cfg, teachers, student, block, opt, images, global_step, total_steps,
                     bf16=precision == "bf16")
                global_step += 1
            epoch_seconds.append(time.perf_counter() - start)
            print(f"reference: {precision} epoch {epoch + 1}/{epochs} {epoch_seconds[-1]:.1f} s",
                  flush=True)
        timed[precision] = epoch_seconds
    epoch_seconds = timed["fp32"]
    out = {"threads": threads, "reference_epoch_s": sum(epoch_seconds) / len(epoch_seconds),
           "epoch_seconds": epoch_seconds, "first_steps_max_rel_diff": worst,
           "later_steps_max_rel_diff": later,
           "first_steps": rows, "flops_per_step": flops_per_step,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "torch": torch.__version__}
    if args.profile:
        out["profile"] = profile_steps(cfg, state, images_u8, batch, total_steps,
                                       args.precision == "bf16", args.profile)
        conv = sum(c["share"] for c in out["profile"]["categories"]
                   if c["name"].startswith("convolution"))
        # The reference's step also runs the teachers' forward passes (amalgam caches them).
        step_flops = flops_per_step + count_teacher_flops(teachers, images_u8[:batch].float() / 255.0)
        out["profile"]["convolution_gflops"] = \
            step_flops / (conv * out["profile"]["seconds_per_step"]) / 1e9
    if "bf16" in timed:
        out["bf16_epoch_seconds"] = timed["bf16"]
        out["reference_bf16_epoch_s"] = sum(timed["bf16"]) / len(timed["bf16"])
    text = json.dumps(out, indent=2)
    if args.json:
        open(args.json, "w").write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
