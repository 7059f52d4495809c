"""How legacy_torch113.pt was made, with Debian 12's python3-torch (PyTorch 1.13): a TorchScript
file from an older PyTorch, which today's LibTorch must still load (tests/platform_test.sh).
The logits it printed for the ramp input are in legacy_torch113.expected.json.

usage: /usr/bin/python3 make_legacy_torch113.py   (in tests/data, with python3-torch 1.13)
"""
import torch, torch.nn as nn, json
print(torch.__version__)
torch.manual_seed(0)
class Legacy(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 3)
    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))
m = Legacy().eval()
torch.jit.script(m).save("legacy_torch113.pt")
json.dump({"task": "legacy", "class_names": ["red", "green", "blue"], "input_size": [32, 32], "channels": 3}, open("legacy_torch113.json", "w"))
x = torch.linspace(0, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
json.dump({"torch": torch.__version__, "logits": m(x).tolist()},
          open("legacy_torch113.expected.json", "w"))
