"""PyTorch's input path on the same folder as amalgam_input_bench: DataLoader workers read each
file, decode it (torchvision.io.decode_jpeg, or PIL), resize it to SIZE x SIZE (antialiased, as
amalgam's resize filters), scale it to float in [0,1] and collate batches; with VIEW "crop", the
training view instead: RandomResizedCrop(SIZE) + horizontal flip + ImageNet normalisation.

usage: python3 input_pipeline.py make DIR COUNT      # COUNT 500x375 JPEGs cut from photographs
       python3 input_pipeline.py time DIR WORKERS torchvision|pil [resize|crop] [SIZE] [BATCH]
"""
import glob
import json
import os
import sys
import time

import torch
from torchvision.io import decode_jpeg, ImageReadMode
from torchvision.transforms import v2


def make(out, count):
    """Windows of Debian's mate-backgrounds nature photographs, 500x375 like ImageNet's typical
    image, JPEG quality 90: natural content, which decodes unlike synthetic patterns."""
    from PIL import Image
    import random
    photos = sorted(glob.glob("/usr/share/backgrounds/mate/nature/*.jpg"))
    if not photos:
        sys.exit("input_pipeline.py: no photographs in /usr/share/backgrounds/mate/nature "
                 "(apt-get install mate-backgrounds)")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(0)
    sources = [Image.open(p).convert("RGB") for p in photos]
    for i in range(count):
        src = sources[i % len(sources)]
        scale = rng.uniform(0.3, 1.0)
        w = int(min(src.width, src.height * 4 / 3) * scale)
        h = w * 3 // 4
        x, y = rng.randrange(src.width - w + 1), rng.randrange(src.height - h + 1)
        src.crop((x, y, x + w, y + h)).resize((500, 375), Image.BICUBIC).save(
            f"{out}/{i:06d}.jpg", quality=90)


class Folder(torch.utils.data.Dataset):
    def __init__(self, root, decoder, view, size):
        self.files = sorted(glob.glob(f"{root}/*.jpg"))
        self.decoder = decoder
        if view == "crop":
            self.transform = v2.Compose([
                v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        else:
            self.transform = v2.Compose([v2.Resize((size, size), antialias=True),
                                         v2.ToDtype(torch.float32, scale=True)])

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        if self.decoder == "pil":
            from PIL import Image
            image = v2.functional.pil_to_tensor(Image.open(self.files[i]).convert("RGB"))
        else:
            with open(self.files[i], "rb") as f:
                data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            image = decode_jpeg(data, mode=ImageReadMode.RGB)
        return self.transform(image)


def time_loader(root, workers, decoder, view="resize", size=224, batch=64):
    torch.set_num_threads(1)  # each worker decodes on its own core, as amalgam's threads do
    loader = torch.utils.data.DataLoader(Folder(root, decoder, view, size), batch_size=batch,
                                         num_workers=workers)
    start = time.perf_counter()
    images, checksum = 0, 0.0
    for x in loader:
        images += x.shape[0]
        checksum += x.sum().item()
    seconds = time.perf_counter() - start
    print(json.dumps({"images": images, "workers": workers, "decoder": decoder, "view": view,
                      "seconds": seconds, "images_per_s": images / seconds,
                      "checksum": checksum}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    else:
        view = sys.argv[5] if len(sys.argv) > 5 else "resize"
        time_loader(sys.argv[2], int(sys.argv[3]), sys.argv[4], view, *map(int, sys.argv[6:]))
