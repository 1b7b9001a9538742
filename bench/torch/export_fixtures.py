"""Exports PyTorch reference results for Lethe's cross-check tests.

For three tiny models that together use every op family of the tensor core, writes one
safetensors file each with the weights, inputs, output, loss, every gradient, and the
parameters after three optimiser steps. Swift tests rebuild the same models with the same
parameter paths, load the weights strictly and must agree to ~1e-5 relative.

Run: bench/torch/setup.sh && bench/torch/.venv/bin/python bench/torch/export_fixtures.py
The fixtures are committed, so tests need no Python.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "LetheModelsTests", "Fixtures", "torch")


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: F32 and I64 tensors in name order."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.norm(F.gelu(self.fc1(x))))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        self.conv2 = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        h = F.silu(self.norm(self.conv1(x)))
        return self.conv2(F.interpolate(h, scale_factor=2, mode="nearest"))


class AttnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 16)
        self.norm = nn.LayerNorm(16)
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, tokens):
        b, t = tokens.shape
        h = self.embed(tokens)
        q, k, v = self.qkv(self.norm(h)).split(16, dim=-1)
        q, k, v = (z.reshape(b, t, 2, 8).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, 16)
        h = h + self.proj(a)
        return self.head(h)


def case(name, model, inputs, target, loss_fn, make_opt, clip=None):
    torch.manual_seed(1)
    tensors = {f"param.{n}": p.detach().clone() for n, p in model.named_parameters()}
    for k, v in inputs.items():
        tensors[f"input.{k}"] = v
    tensors["target"] = target
    out = model(*inputs.values())
    loss = loss_fn(out, target)
    loss.backward()
    tensors["output"] = out
    tensors["loss"] = loss.reshape(1)
    for n, p in model.named_parameters():
        tensors[f"grad.{n}"] = p.grad.clone()
    opt = make_opt(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        loss_fn(model(*inputs.values()), target).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    for n, p in model.named_parameters():
        tensors[f"after3.{n}"] = p.detach().clone()
    meta = {"model": name, "torch": torch.__version__, "optimizer": repr(opt).replace("\n", " ")}
    write_safetensors(os.path.join(OUT, f"{name}.safetensors"), tensors, meta)
    print(f"{name}: loss {loss.item():.6f}, {sum(p.numel() for p in model.parameters())} parameters")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    case("mlp", MLP(), {"x": torch.randn(5, 6)}, torch.randn(5, 3), F.mse_loss,
         lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.05))
    case("conv", ConvNet(), {"x": torch.randn(2, 2, 8, 8)}, torch.randn(2, 2, 8, 8), F.l1_loss,
         lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.01))
    tokens = torch.randint(0, 10, (2, 5))
    targets = torch.randint(0, 10, (2, 5))
    case("attention", AttnNet(), {"tokens": tokens}, targets,
         lambda out, tgt: F.cross_entropy(out.reshape(-1, 10), tgt.reshape(-1)),
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), clip=1.0)


if __name__ == "__main__":
    sys.exit(main())
