#!/usr/bin/env python3
"""PyTorch CPU reference for `npm run bench`: images/s of inference and training per architecture.

Run by bench/run.ts in the same session as our own measurements, so the ratio to PyTorch is measured,
not remembered. Needs Debian's python3-torch and python3-torchvision (PyTorch 1.13 CPU):
    apt-get install -y python3-torch python3-torchvision
Usage: /usr/bin/python3 bench/pytorch-reference.py --arch resnet50 --size 128 --batch 16 \
          --threads 2 --seconds 10 [--classes 10]
Prints one JSON object: {arch, size, batch, threads, inferenceImagesPerSecond, trainImagesPerSecond, torch}.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torchvision


def cnn(num_classes: int) -> nn.Module:
    """The same 3-block CNN as our `cnn` architecture: conv-BN-ReLU-maxpool x3, GAP, dropout, dense."""
    layers = []
    channels = 3
    for filters in (32, 64, 128):
        layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.BatchNorm2d(filters), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def build(arch: str, num_classes: int) -> nn.Module:
    if arch == 'cnn':
        return cnn(num_classes)
    if arch == 'vgg16':
        return torchvision.models.vgg16(num_classes=num_classes)
    if arch == 'resnet50':
        return torchvision.models.resnet50(num_classes=num_classes)
    if arch == 'inceptionv3':
        return torchvision.models.inception_v3(num_classes=num_classes, aux_logits=False, init_weights=False)
    raise ValueError(arch)


def rate(step, batch: int, seconds: float) -> float:
    """Images/s of `step`, after one warm-up call, over at least `seconds` (and at least 2 calls)."""
    step()
    count = 0
    start = time.perf_counter()
    while count < 2 or time.perf_counter() - start < seconds:
        step()
        count += 1
    return count * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--arch', required=True)
    parser.add_argument('--size', type=int, required=True)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seconds', type=float, default=10)
    parser.add_argument('--classes', type=int, default=10)
    parser.add_argument('--skip-train', action='store_true')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.arch, args.classes)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))

    model.eval()

    def infer():
        with torch.no_grad():
            model(x)

    result = {
        'arch': args.arch, 'size': args.size, 'batch': args.batch, 'threads': args.threads,
        'torch': torch.__version__,
        'inferenceImagesPerSecond': rate(infer, args.batch, args.seconds),
    }
    if not args.skip_train:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def train():
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()

        result['trainImagesPerSecond'] = rate(train, args.batch, args.seconds)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
