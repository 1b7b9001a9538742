"""PyTorch side of `lethe bench --end-to-end`: a short unlearning run of the paper's objective, whole.

The same work as `lethe run` on the spec `lethe bench --end-to-end` writes: read Fashion-MNIST from
Debian's IDX files, pad to 32x32, draw batches of 32 retain (classes 0-3) and 32 forget (5, 7, 9)
images, a centre-crop mask of 25%, Gaussian noise through the same mask, N Adam steps (lr 1e-4) on
the encoder of the reference model (bench_steps.py) against a frozen teacher, then save the
checkpoint. Prints one JSON object: {"model", "steps", "threads", "seconds", "peak_rss_mib"}.
Timed from the start of the script (imports included), as the parent times `lethe run`.
"""
import time

START = time.perf_counter()

import argparse
import gzip
import json
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

import bench_steps as ref

ROOT = "/usr/share/datasets/fashion-mnist"


def load(prefix):
    with gzip.open(f"{ROOT}/{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{ROOT}/{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def batch(images, ids):
    x = np.zeros((len(ids), 1, 32, 32), np.float32)
    x[:, 0, 2:30, 2:30] = images[ids] / 255.0
    return torch.from_numpy(x)


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mae", "vq_autoencoder", "mage", "diffusion"], required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    images, labels = load("train")
    retain = np.flatnonzero(np.isin(labels, [0, 1, 2, 3]))
    forget = np.flatnonzero(np.isin(labels, [5, 7, 9]))
    m = ref.crop_mask()                       # 1 visible, 0 hidden
    hidden_patches = {r * 8 + c for r in range(2, 6) for c in range(2, 6)}
    visible = torch.tensor([i for i in range(64) if i not in hidden_patches]).repeat(ref.B, 1)

    student = {"mae": ref.MAE, "vq_autoencoder": ref.VQGAN, "mage": ref.MAGE, "diffusion": ref.UNet}[args.model]()
    teacher = ref.frozen_copy(student)
    encoder = list(student.encoder.parameters()) if args.model == "vq_autoencoder" else student.encoder_parameters()
    opt = ref.encoder_adam(student, encoder)

    def dist(a, b):
        return sum(F.mse_loss(x, y) for x, y in zip(a, b))

    for step in range(args.steps):
        xr = batch(images, rng.choice(retain, ref.B, replace=False))
        xf = batch(images, rng.choice(forget, ref.B, replace=False))
        noise = torch.randn_like(xf)
        opt.zero_grad()
        if args.model == "mae":
            with torch.no_grad():
                tr, tf = teacher.encode(xr, visible), teacher.encode(noise, visible)
            loss = F.mse_loss(student.encode(xr, visible), tr) + ref.ALPHA * F.mse_loss(student.encode(xf, visible), tf)
        elif args.model == "vq_autoencoder":
            with torch.no_grad():
                tr, tf = teacher.encoder(xr * m), teacher.encoder(noise * m)
            loss = F.mse_loss(student.encoder(xr * m), tr) + ref.ALPHA * F.mse_loss(student.encoder(xf * m), tf)
        elif args.model == "mage":
            kr, kf, kn = teacher.tokenize(xr * m), teacher.tokenize(xf * m), teacher.tokenize(noise * m)
            with torch.no_grad():
                tr, tf = teacher.encode(kr, visible), teacher.encode(kn, visible)
            loss = F.mse_loss(student.encode(kr, visible), tr) + ref.ALPHA * F.mse_loss(student.encode(kf, visible), tf)
        else:
            t = torch.randint(0, 100, (ref.B,))
            y0r, y0f = xr * 2 - 1, xf * 2 - 1
            eps_r, eps_f = torch.randn_like(xr), torch.randn_like(xf)
            xtr = y0r * m + eps_r * (1 - m)
            xtf = y0f * m + eps_f * (1 - m)
            xtn = y0f * m + noise * (1 - m)
            with torch.no_grad():
                emb = teacher.timestep_embedding(t)
                tr, tf = teacher.encode(xtr, y0r * m, emb), teacher.encode(xtn, y0f * m, emb)
            emb = student.timestep_embedding(t)
            loss = dist(student.encode(xtr, y0r * m, emb), tr) + ref.ALPHA * dist(student.encode(xtf, y0f * m, emb), tf)
        if not torch.isfinite(loss):
            raise SystemExit(f"loss became {loss.item()} at step {step + 1}")
        loss.backward()
        opt.step()

    with tempfile.TemporaryDirectory() as d:
        torch.save(student.state_dict(), os.path.join(d, "checkpoint.pt"))
    print(json.dumps({"model": args.model, "steps": args.steps, "threads": args.threads,
                      "seconds": time.perf_counter() - START, "peak_rss_mib": peak_rss_mib(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
