"""Combines `amalgam bench` and bench/reference.py results into one table and one JSON.

usage: python3 summarize.py AMALGAM.json REFERENCE.json [--reference-blas J] [--json OUT]
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("amalgam")
ap.add_argument("reference")
ap.add_argument("--reference-blas")
ap.add_argument("--json")
args = ap.parse_args()
ours = json.load(open(args.amalgam))
ref = json.load(open(args.reference))
a = ours["amalgam"]
steps = a["steps_per_epoch"]
achieved = ref["flops_per_step"] * steps / a["steady_epoch_s"] / 1e9
peak = ours["peak"]["peak_gflops"]
summary = {
    "amalgam_epoch_s": a["amalgam_epoch_s"],
    "reference_epoch_s": ref["reference_epoch_s"],
    "ratio": a["amalgam_epoch_s"] / ref["reference_epoch_s"],
    "first_steps_max_rel_diff": ref["first_steps_max_rel_diff"],
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
if args.reference_blas:
    summary["levers"]["reference_blas_epoch_s"] = \
        json.load(open(args.reference_blas))["amalgam"]["steady_epoch_s"]

print(f"CFL amalgamation, demo setup: {ours['images']} transfer images, batch {ours['batch_size']}, "
      f"{ours['epochs']} epoch(s), {ours['threads']} threads")
print(f"  amalgam    {summary['amalgam_epoch_s']:7.2f} s/epoch (steady {a['steady_epoch_s']:.2f} s "
      f"+ teacher cache {a['cache_seconds']:.2f} s over {ours['epochs']} epoch(s)), "
      f"{a['images_per_second']:.0f} img/s, peak RSS {a['peak_rss_mib']:.0f} MiB")
print(f"  reference  {ref['reference_epoch_s']:7.2f} s/epoch (PyTorch {ref['torch']}, teachers "
      f"every batch), peak RSS {ref['peak_rss_mib']:.0f} MiB")
print(f"  ratio amalgam/reference {summary['ratio']:.2f}; first {len(ref['first_steps'])} steps' "
      f"loss terms max relative difference {ref['first_steps_max_rel_diff']:.2g}")
print(f"  FP32 peak {peak:.0f} GFLOP/s (GEMM {ours['peak']['gemm_2048_gflops']:.0f}, conv "
      f"{ours['peak']['conv3x3_gflops']:.0f}); student+block step {ref['flops_per_step'] / 1e9:.1f} "
      f"GFLOP, achieved {achieved:.0f} GFLOP/s = {100 * achieved / peak:.0f}% of peak")
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
