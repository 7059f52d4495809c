"""Combines `amalgam bench` and bench/reference.py results into one table and one JSON.

usage: python3 summarize.py AMALGAM.json REFERENCE.json [--json OUT]
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("amalgam")
ap.add_argument("reference")
ap.add_argument("--json")
args = ap.parse_args()
ours = json.load(open(args.amalgam))
ref = json.load(open(args.reference))
precision = ours.get("precision", "fp32")
a = ours["amalgam"]  # at the default precision
a32 = ours.get("amalgam_fp32", a)
steps = a["steps_per_epoch"]
achieved = ref["flops_per_step"] * steps / a["steady_epoch_s"] / 1e9
peak = ours["peak_bf16" if precision == "bf16" else "peak"]["peak_gflops"]
same_precision_reference = ref["reference_bf16_epoch_s"] if precision == "bf16" else \
    ref["reference_epoch_s"]
summary = {
    "precision": precision,
    "amalgam_epoch_s": a["amalgam_epoch_s"],
    "reference_epoch_s": ref["reference_epoch_s"],
    "ratio": a["amalgam_epoch_s"] / ref["reference_epoch_s"],
    "reference_same_precision_epoch_s": same_precision_reference,
    "same_precision_ratio": a["amalgam_epoch_s"] / same_precision_reference,
    "amalgam_fp32_epoch_s": a32["amalgam_epoch_s"],
    "fp32_ratio": a32["amalgam_epoch_s"] / ref["reference_epoch_s"],
    "first_steps_max_rel_diff": ref["first_steps_max_rel_diff"],
    "later_steps_max_rel_diff": ref["later_steps_max_rel_diff"],
    "peak_gflops": peak,
    "achieved_gflops": achieved,
    "peak_fraction": achieved / peak,
    "amalgam_steady_epoch_s": a["steady_epoch_s"],
    "amalgam_teacher_cache_s": a["cache_seconds"],
    "amalgam_images_per_second": a["images_per_second"],
    "amalgam_peak_rss_mib": a["peak_rss_mib"],
    "reference_peak_rss_mib": ref["peak_rss_mib"],
    "flops_per_step": ref["flops_per_step"],
    "images": ours["images"], "epochs": ours["epochs"], "batch_size": ours["batch_size"],
    "threads": ours["threads"], "peak": ours["peak"], "levers": ours.get("levers", {}),
    "scaling": ours.get("scaling", {}),
}
if "peak_bf16" in ours:
    summary["peak_bf16"] = ours["peak_bf16"]
# The reduced-precision run's first step (same weights and batch) against FP32's loss terms.
# Only the first: after one Adam step any difference in near-zero gradients becomes a full-size
# step, so later steps differ at every precision (the recon term by 26% at step 3 here).
reduced_diff = 0.0
for fp32_step, reduced_step in zip(ours["check_steps"][:1], ours.get("check_steps_reduced", [])):
    for name in ("total", "kd", "mmd", "recon"):
        reduced_diff = max(reduced_diff, abs(reduced_step[name] - fp32_step[name]) /
                           max(abs(fp32_step[name]), 1e-12))
summary["first_step_precision_max_rel_diff"] = reduced_diff
if ref.get("profile"):
    summary["profile"] = ref["profile"]

print(f"CFL amalgamation, demo setup: {ours['images']} transfer images, batch {ours['batch_size']}, "
      f"{ours['epochs']} epoch(s), {ours['threads']} threads, default precision {precision}")
print(f"  amalgam {precision:4s} {summary['amalgam_epoch_s']:7.2f} s/epoch (steady {a['steady_epoch_s']:.2f} s "
      f"+ teacher cache {a['cache_seconds']:.2f} s over {ours['epochs']} epoch(s)), "
      f"{a['images_per_second']:.0f} img/s, peak RSS {a['peak_rss_mib']:.0f} MiB")
if a32 is not a:
    print(f"  amalgam fp32 {a32['amalgam_epoch_s']:7.2f} s/epoch (steady {a32['steady_epoch_s']:.2f} s "
          f"+ teacher cache {a32['cache_seconds']:.2f} s)")
print(f"  reference fp32 {ref['reference_epoch_s']:7.2f} s/epoch (PyTorch {ref['torch']}, teachers "
      f"every batch), peak RSS {ref['peak_rss_mib']:.0f} MiB")
if precision == "bf16":
    print(f"  reference bf16 {same_precision_reference:7.2f} s/epoch (torch.autocast)")
print(f"  ratio amalgam {precision} / reference fp32 {summary['ratio']:.2f}; same precision "
      f"{summary['same_precision_ratio']:.2f}; both fp32 {summary['fp32_ratio']:.2f}")
print(f"  fp32: first 2 steps' loss terms max relative difference "
      f"{ref['first_steps_max_rel_diff']:.2g} (vs the reference); later steps "
      f"{ref['later_steps_max_rel_diff']:.2g} (Python's Adam rounds its moments apart)")
if precision != "fp32":
    print(f"  {precision}: first step's loss terms max relative difference {reduced_diff:.2g} "
          f"(vs amalgam at fp32, same weights and batch; tolerance 0.05)")
for name, p in [("fp32", ours["peak"])] + ([("bf16", ours["peak_bf16"])] if "peak_bf16" in ours else []):
    print(f"  {name} peak {p['peak_gflops']:.0f} GFLOP/s (GEMM {p['gemm_2048_gflops']:.0f}, conv "
          f"{p['conv3x3_gflops']:.0f})")
print(f"  student+block step {ref['flops_per_step'] / 1e9:.1f} GFLOP, achieved {achieved:.0f} "
      f"GFLOP/s = {100 * achieved / peak:.0f}% of the {precision} peak")
for row in summary.get("profile", {}).get("categories", []):
    print(f"  profile ({summary['profile']['precision']}, {summary['profile']['steps']} reference "
          f"steps) {row['name']:22s} {100 * row['share']:5.1f}% of CPU time")
for name, value in summary["levers"].items():
    print(f"  lever {name:28s} {value:7.2f} s/epoch (vs {a['epoch_seconds'][0]:.2f})")
for row in summary["scaling"].get("images", []):
    print(f"  scaling {row['images']:6d} images: epoch {row['epoch_s']:.2f} s + cache {row['cache_s']:.2f} s")
for row in summary["scaling"].get("teachers", []):
    print(f"  scaling {row['teachers']} teacher(s): epoch {row['epoch_s']:.2f} s + cache {row['cache_s']:.2f} s")
if args.json:
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
