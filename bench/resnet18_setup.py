"""The 224-pixel set-up of bench/streaming.sh: two torchvision ResNet-18 teachers (5 classes each,
TorchScript with a sidecar giving their task and ImageNet conventions) and a ResNet-18 student
with 10 outputs. Their weights are random (no download happens here); the bench measures memory
and time, which the weights do not change.

usage: python3 resnet18_setup.py OUT_DIR
"""
import json
import os
import sys

import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
for name, classes in (("a", ["c0", "c1", "c2", "c3", "c4"]), ("b", ["c5", "c6", "c7", "c8", "c9"])):
    torch.jit.script(torchvision.models.resnet18(num_classes=5).eval()).save(f"{out}/{name}.pt")
    with open(f"{out}/{name}.json", "w") as f:
        json.dump({"task": name.upper(), "class_names": classes, "input_size": [224, 224],
                   "channels": 3, "mean": [0.485, 0.456, 0.406],
                   "std": [0.229, 0.224, 0.225]}, f)
torch.jit.script(torchvision.models.resnet18(num_classes=10)).save(f"{out}/student.pt")
with open(f"{out}/student.json", "w") as f:
    json.dump({"input_size": [224, 224], "channels": 3, "mean": [0.485, 0.456, 0.406],
               "std": [0.229, 0.224, 0.225]}, f)
