"""The README's demo: build a small BNN with ``binarize_``, train it briefly on Fashion-MNIST,
print its test accuracy and its ``summary`` table.

    python -m onebit.demo [--epochs 1] [--limit N] [--method-quantizer ste_sign]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

import onebit
from onebit.nn import QuantizedLayerMixin


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """A compact CNN for 28x28 images; ``binarize_`` turns its middle layers binary."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.MaxPool2d(2)]

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32),
        *block(32, 64), *block(64, 128), *block(128, 128),
        nn.Flatten(), nn.Linear(128 * 3 * 3, 256, bias=False), nn.BatchNorm1d(256),
        nn.Linear(256, num_classes),
    )


def clip_latent_weights_(model: nn.Module, bound: float = 1.0) -> None:
    """BNN practice: keep latent binary weights in [-bound, bound] so the STE keeps passing gradients."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QuantizedLayerMixin) and module.weight_quantizer is not None:
                module.weight.clamp_(-bound, bound)


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(dim=1) == y).sum().item()
        total += y.numel()
    return correct / total


def train(model: nn.Module, loader: DataLoader, epochs: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    for epoch in range(epochs):
        model.train()
        start, running = time.perf_counter(), 0.0
        for step, (x, y) in enumerate(loader, 1):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            clip_latent_weights_(model)
            running += loss.item()
            if step % 100 == 0 or step == len(loader):
                print(f"  epoch {epoch + 1}/{epochs} step {step}/{len(loader)} loss {running / step:.4f}"
                      f" ({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    from onebit.data import fashion_mnist

    train_set, test_set = fashion_mnist("train"), fashion_mnist("test")
    if args.limit:
        train_set = torch.utils.data.Subset(train_set, range(min(args.limit, len(train_set))))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=1000)

    model = small_cnn()
    config = onebit.BinarizeConfig(input_quantizer="ste_sign", weight_quantizer="ste_sign", pad_value=1.0)
    onebit.binarize_(model, config)
    print(f"Binarized with {config.to_json()}")
    print(f"Training on {len(train_set)} Fashion-MNIST images for {args.epochs} epoch(s) on "
          f"{torch.get_num_threads()} CPU thread(s)")
    start = time.perf_counter()
    train(model, train_loader, args.epochs, args.lr)
    acc = accuracy(model, test_loader)
    print(f"\nTest accuracy (binary model, 10,000 Fashion-MNIST test images): {100 * acc:.2f}%"
          f"  [trained {time.perf_counter() - start:.0f} s]\n")
    onebit.summary(model, (1, 1, 28, 28))


if __name__ == "__main__":
    main()
