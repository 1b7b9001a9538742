"""PyTorch side of `lethe bench`: one unlearning step of the paper's objective on each reference model,
one pretraining step of each and a batch of its completions.

Same models (architecture and parameter count) and the same work as Sources/lethe/ReferenceSteps.swift
and ReferenceWork.swift: batch 32 retain + 32 forget, 32x32 images, centre crop of 25%, Adam lr 1e-4 on
the encoder, a frozen teacher; pretraining on each model's own loss (batch 32, Adam lr 1e-4 over what
it trains); completions of batch 32 without gradient (the diffusion model's 100 DDPM steps, on a batch of 8). Prints one JSON object per model: {"model", "parameters", "threads", "ms"} (best step time);
with --serve, answers `lethe bench`'s timing requests one at a time (see serve()).
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, ALPHA = 32, 0.25


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(1, 128, 4, stride=4)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class MAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 64, 128), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 64))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 64, 64), requires_grad=False)
        self.patch_embed = PatchEmbed()
        self.blocks = nn.ModuleList([Block(128, 4) for _ in range(4)])
        self.norm = nn.LayerNorm(128, eps=1e-6)
        self.decoder_embed = nn.Linear(128, 64)
        self.decoder_blocks = nn.ModuleList([Block(64, 4) for _ in range(2)])
        self.decoder_norm = nn.LayerNorm(64, eps=1e-6)
        self.decoder_pred = nn.Linear(64, 16)

    def encoder_parameters(self):
        return [*self.patch_embed.parameters(), *self.blocks.parameters(), *self.norm.parameters()]

    def encode(self, x, visible):
        t = self.patch_embed(x) + self.pos_embed
        t = torch.gather(t, 1, visible.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)


def restore(x, mask_token, visible, count):
    """Lethe's TokenOrder.restore (MAE's ids_restore): the visible tokens' latents (B, V, C) and a mask
    token at every other of `count` positions, each put back at its position -> (B, count, C)."""
    b, v, c = x.shape
    tokens = torch.cat([x, mask_token.expand(b, count - v, c)], dim=1) if v < count else x
    order = []
    for vis in visible.tolist():
        shown = set(vis)
        position = [0] * count
        for i, p in enumerate(vis + [p for p in range(count) if p not in shown]):
            position[p] = i
        order.append(position)
    return torch.gather(tokens, 1, torch.tensor(order).unsqueeze(-1).expand(-1, -1, c))


def gather_tokens(x, indices):
    return torch.gather(x, 1, indices.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def mae_decode(model, latent, visible):
    h = restore(model.decoder_embed(latent), model.mask_token, visible, 64) + model.decoder_pos_embed
    for blk in model.decoder_blocks:
        h = blk(h)
    return model.decoder_pred(model.decoder_norm(h))


def patchify(x):
    b = x.shape[0]
    return x.reshape(b, 1, 8, 4, 8, 4).permute(0, 2, 4, 3, 5, 1).reshape(b, 64, 16)


def unpatchify(p):
    b = p.shape[0]
    return p.reshape(b, 8, 8, 4, 4, 1).permute(0, 5, 1, 3, 2, 4).reshape(b, 1, 32, 32)


class ConvStage(nn.Module):
    def __init__(self, cin, cout, down=False, up=False):
        super().__init__()
        self.up = up
        self.conv, self.norm = nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout)
        self.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if down else None

    def forward(self, x):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = F.silu(self.norm(self.conv(x)))
        return self.downsample(h) if self.downsample is not None else h


class VQEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(1, 32, 3, padding=1)
        self.down = nn.ModuleList([ConvStage(32, 32, down=True), ConvStage(32, 64, down=True)])
        self.conv_out = nn.Conv2d(64, 32, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for s in self.down:
            h = s(h)
        return self.conv_out(h)


class VQDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(32, 64, 3, padding=1)
        self.up = nn.ModuleList([ConvStage(64, 64, up=True), ConvStage(64, 32, up=True)])
        self.conv_out = nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        for s in self.up:
            h = s(h)
        return self.conv_out(h)


class Quantize(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(256, 32)

    def forward(self, z):
        """z_e -> z_q (straight-through), the VQ loss ||sg[z_e] - e||^2 + 0.25 ||z_e - sg[e]||^2."""
        b, d, h, w = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(-1, d)
        e = self.embedding.weight
        codes = e[(e.pow(2).sum(1) - 2 * rows @ e.t()).argmin(1)]
        loss = F.mse_loss(codes, rows.detach()) + 0.25 * F.mse_loss(rows, codes.detach())
        q = rows + (codes - rows).detach()
        return q.reshape(b, h, w, d).permute(0, 3, 1, 2), loss


class VQGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.quantize, self.decoder = VQEncoder(), Quantize(), VQDecoder()

    def reconstruction_loss(self, masked, target):
        q, vq = self.quantize(self.encoder(masked))
        return F.mse_loss(self.decoder(q), target) + vq


class TokenEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(257, 128)
        self.position_embeddings = nn.Embedding(64, 128)
        self.LayerNorm = nn.LayerNorm(128, eps=1e-6)

    def forward(self, ids, positions):
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions))


class MAGE(nn.Module):
    """Lethe's MAGE (Sources/LetheModels/MAGE.swift): the VQ-GAN tokenizer, then a ViT over its tokens."""
    def __init__(self):
        super().__init__()
        self.tokenizer = VQGAN()
        self.token_emb = TokenEmbedding()
        self.blocks = nn.ModuleList([Block(128, 4) for _ in range(4)])
        self.norm = nn.LayerNorm(128, eps=1e-6)
        self.decoder_embed = nn.Linear(128, 128)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 128))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, 64, 128))
        self.decoder_blocks = nn.ModuleList([Block(128, 4) for _ in range(2)])
        self.decoder_norm = nn.LayerNorm(128, eps=1e-6)
        self.decoder_pred = nn.Linear(128, 256)

    def encoder_parameters(self):
        return [*self.token_emb.parameters(), *self.blocks.parameters(), *self.norm.parameters()]

    @torch.no_grad()
    def tokenize(self, x):
        rows = self.tokenizer.encoder(x).permute(0, 2, 3, 1).reshape(-1, 32)
        w = self.tokenizer.quantize.embedding.weight
        return (w.pow(2).sum(1) - 2 * rows @ w.t()).argmin(1).reshape(x.shape[0], 64)

    def encode(self, tokens, visible):
        h = self.token_emb(torch.gather(tokens, 1, visible), visible)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def decode(self, latent, visible):
        h = restore(self.decoder_embed(latent), self.mask_token, visible, 64) + self.decoder_pos_embed_learned
        for blk in self.decoder_blocks:
            h = blk(h)
        return self.decoder_pred(self.decoder_norm(h))

    def render(self, tokens):
        codes = self.tokenizer.quantize.embedding.weight[tokens.reshape(-1)]
        return self.tokenizer.decoder(codes.reshape(tokens.shape[0], 8, 8, 32).permute(0, 3, 1, 2))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb=128):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Level(nn.Module):
    def __init__(self, cin, cout, resample):
        super().__init__()
        self.res = ResBlock(cin, cout)
        self.resample = resample


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.time_embed = nn.Sequential(nn.Linear(32, 128), nn.SiLU(), nn.Linear(128, 128))
        self.conv_in = nn.Conv2d(2, 32, 3, padding=1)
        self.down = nn.ModuleList([Level(32, 32, nn.Conv2d(32, 32, 3, stride=2, padding=1)), Level(32, 64, None)])
        self.mid = ResBlock(64, 64)
        self.up = nn.ModuleList([Level(128, 64, nn.Conv2d(64, 64, 3, padding=1)), Level(96, 32, None)])
        self.norm_out, self.conv_out = nn.GroupNorm(8, 32), nn.Conv2d(32, 1, 3, padding=1)

    def encoder_parameters(self):
        return [*self.time_embed.parameters(), *self.conv_in.parameters(), *self.down.parameters(), *self.mid.parameters()]

    def timestep_embedding(self, t):
        freqs = torch.exp(-math.log(10000.0) * torch.arange(16, dtype=torch.float32) / 16)
        args = t[:, None].float() * freqs[None]
        return self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))

    def encode(self, xt, cond, emb):
        h, feats = self.conv_in(torch.cat([xt, cond], dim=1)), []
        for level in self.down:
            h = level.res(h, emb)
            feats.append(h)
            if level.resample is not None:
                h = level.resample(h)
        feats.append(self.mid(h, emb))
        return feats

    def decode(self, feats, emb):
        h = feats[-1]
        for j, level in enumerate(self.up):
            h = level.res(torch.cat([h, feats[len(feats) - 2 - j]], dim=1), emb)
            if level.resample is not None:
                h = level.resample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, xt, cond, t):
        emb = self.timestep_embedding(t)
        return self.decode(self.encode(xt, cond, emb), emb)


def alpha_bar():
    """Lethe's default schedule (scaled_linear, 100 steps): beta from 1e-4 to 0.02, times 1000 / T."""
    betas = [min(0.999, 1e-3 + (0.2 - 1e-3) * i / 99) for i in range(100)]
    out, a = [], 1.0
    for b in betas:
        a *= 1 - b
        out.append(a)
    return out


def crop_mask():
    m = torch.ones(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 0
    return m


def frozen_copy(model):
    teacher = type(model)()
    teacher.load_state_dict(model.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def encoder_adam(model, encoder_params):
    for p in model.parameters():
        p.requires_grad_(False)
    for p in encoder_params:
        p.requires_grad_(True)
    return torch.optim.Adam(encoder_params, lr=1e-4)


def mae_step():
    student = MAE()
    teacher = frozen_copy(student)
    xr, xf, noise = torch.rand(B, 1, 32, 32), torch.rand(B, 1, 32, 32), torch.rand(B, 1, 32, 32)
    visible = visible_patches()
    opt = encoder_adam(student, student.encoder_parameters())

    def step():
        opt.zero_grad()
        with torch.no_grad():
            tr, tf = teacher.encode(xr, visible), teacher.encode(noise, visible)
        loss = F.mse_loss(student.encode(xr, visible), tr) + ALPHA * F.mse_loss(student.encode(xf, visible), tf)
        loss.backward()
        opt.step()
    return "MAE", student, step


def vq_autoencoder_step():
    student = VQGAN()
    teacher = frozen_copy(student)
    m = crop_mask()
    xr, xf, noise = torch.rand(B, 1, 32, 32) * m, torch.rand(B, 1, 32, 32) * m, torch.rand(B, 1, 32, 32) * m
    opt = encoder_adam(student, list(student.encoder.parameters()))

    def step():
        opt.zero_grad()
        with torch.no_grad():
            tr, tf = teacher.encoder(xr), teacher.encoder(noise)
        loss = F.mse_loss(student.encoder(xr), tr) + ALPHA * F.mse_loss(student.encoder(xf), tf)
        loss.backward()
        opt.step()
    return "VQ autoencoder", student, step


def mage_step():
    student = MAGE()
    teacher = frozen_copy(student)
    m = crop_mask()
    xr, xf, noise = torch.rand(B, 1, 32, 32) * m, torch.rand(B, 1, 32, 32) * m, torch.rand(B, 1, 32, 32) * m
    visible = visible_patches()
    opt = encoder_adam(student, student.encoder_parameters())

    def step():
        opt.zero_grad()
        kr, kf, kn = teacher.tokenize(xr), teacher.tokenize(xf), teacher.tokenize(noise)
        with torch.no_grad():
            tr, tf = teacher.encode(kr, visible), teacher.encode(kn, visible)
        loss = F.mse_loss(student.encode(kr, visible), tr) + ALPHA * F.mse_loss(student.encode(kf, visible), tf)
        loss.backward()
        opt.step()
    return "MAGE", student, step


def diffusion_step():
    student = UNet()
    teacher = frozen_copy(student)
    m = crop_mask()
    xr, xf, noise = torch.rand(B, 1, 32, 32), torch.rand(B, 1, 32, 32), torch.rand(B, 1, 32, 32)
    xtr, xtf = torch.rand(B, 1, 32, 32), torch.rand(B, 1, 32, 32)
    xtn = xf * m + noise * (1 - m)
    t = torch.randint(0, 100, (B,))
    opt = encoder_adam(student, student.encoder_parameters())

    def dist(a, b):
        return sum(F.mse_loss(x, y) for x, y in zip(a, b))

    def step():
        opt.zero_grad()
        with torch.no_grad():
            emb = teacher.timestep_embedding(t)
            tr, tf = teacher.encode(xtr, xr * m, emb), teacher.encode(xtn, xf * m, emb)
        emb = student.timestep_embedding(t)
        loss = dist(student.encode(xtr, xr * m, emb), tr) + ALPHA * dist(student.encode(xtf, xf * m, emb), tf)
        loss.backward()
        opt.step()
    return "diffusion", student, step


HOLE = sorted(r * 8 + c for r in range(2, 6) for c in range(2, 6))


def visible_patches():
    return torch.tensor([i for i in range(64) if i not in HOLE]).repeat(B, 1)


def all_trainable_adam(model):
    for p in model.parameters():
        p.requires_grad_(True)
    if isinstance(model, MAE):
        model.pos_embed.requires_grad_(False)
        model.decoder_pos_embed.requires_grad_(False)
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def mae_pretrain():
    model = MAE()
    x = torch.rand(B, 1, 32, 32)
    visible = torch.tensor([i for i in range(64) if i % 4 == 0]).repeat(B, 1)
    hidden = torch.tensor([i for i in range(64) if i % 4 != 0]).repeat(B, 1)
    opt = all_trainable_adam(model)

    def step():
        opt.zero_grad()
        pred = mae_decode(model, model.encode(x, visible), visible)
        F.mse_loss(gather_tokens(pred, hidden), gather_tokens(patchify(x), hidden)).backward()
        opt.step()
    return "MAE", model, step


def vq_autoencoder_pretrain():
    model = VQGAN()
    x = torch.rand(B, 1, 32, 32)
    masked = x * crop_mask()
    opt = all_trainable_adam(model)

    def step():
        opt.zero_grad()
        model.reconstruction_loss(masked, x).backward()
        opt.step()
    return "VQ autoencoder", model, step


def mage_pretrain():
    model = MAGE()
    x = torch.rand(B, 1, 32, 32)
    visible, hidden = visible_patches(), torch.tensor(HOLE).repeat(B, 1)
    transformer = [p for n, p in model.named_parameters() if not n.startswith("tokenizer.")]
    opt = encoder_adam(model, transformer)

    def step():
        opt.zero_grad()
        tokens = model.tokenize(x)
        logits = gather_tokens(model.decode(model.encode(tokens, visible), visible), hidden)
        F.cross_entropy(logits.reshape(-1, 256), torch.gather(tokens, 1, hidden).reshape(-1)).backward()
        opt.step()
    return "MAGE", model, step


def diffusion_pretrain():
    model = UNet()
    hole = 1 - crop_mask()
    y0, eps = torch.rand(B, 1, 32, 32) * 2 - 1, torch.randn(B, 1, 32, 32)
    t = torch.randint(0, 100, (B,))
    a = torch.tensor(alpha_bar())[t].reshape(B, 1, 1, 1)
    yt = y0 * a.sqrt() + eps * (1 - a).sqrt()
    inp, cond = yt * hole + y0 * (1 - hole), y0 * (1 - hole)
    opt = all_trainable_adam(model)

    def step():
        opt.zero_grad()
        ((model(inp, cond, t) - eps) * hole).square().mean().backward()
        opt.step()
    return "diffusion", model, step


def mae_complete():
    model = MAE()
    masked, visible = torch.rand(B, 1, 32, 32) * crop_mask(), visible_patches()

    @torch.no_grad()
    def complete():
        unpatchify(mae_decode(model, model.encode(masked, visible), visible))
    return "MAE", model, complete


def vq_autoencoder_complete():
    model = VQGAN()
    masked = torch.rand(B, 1, 32, 32) * crop_mask()

    @torch.no_grad()
    def complete():
        model.decoder(model.quantize(model.encoder(masked))[0])
    return "VQ autoencoder", model, complete


def mage_complete():
    model = MAGE()
    masked, visible = torch.rand(B, 1, 32, 32) * crop_mask(), visible_patches()
    hole = torch.tensor(HOLE)

    @torch.no_grad()
    def complete():
        tokens = model.tokenize(masked)
        logits = model.decode(model.encode(tokens, visible), visible)
        tokens[:, hole] = logits[:, hole].argmax(-1)
        model.render(tokens)
    return "MAGE", model, complete


DDPM_BATCH = 8  # 100 UNet passes make a batch of 32 take many seconds


def diffusion_complete():
    model = UNet()
    hole = 1 - crop_mask()
    y0 = torch.rand(DDPM_BATCH, 1, 32, 32) * 2 - 1
    cond, ab = y0 * (1 - hole), alpha_bar()

    @torch.no_grad()
    def complete():
        y = torch.randn(DDPM_BATCH, 1, 32, 32)
        for t in range(99, -1, -1):
            eps = model(y * hole + y0 * (1 - hole), cond, torch.full((DDPM_BATCH,), t))
            a, a_prev = ab[t], ab[t - 1] if t > 0 else 1.0
            x0 = ((y - eps * math.sqrt(1 - a)) / math.sqrt(a)).clamp(-1, 1)
            beta = 1 - a / a_prev
            mean = x0 * (math.sqrt(a_prev) * beta / (1 - a)) + y * (math.sqrt(a / a_prev) * (1 - a_prev) / (1 - a))
            y = mean + torch.randn_like(y) * math.sqrt(beta * (1 - a_prev) / (1 - a)) if t > 0 else mean
    return "diffusion", model, complete


def best_ms(fn, seconds):
    fn()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def op_functions():
    """The op families of `lethe bench` (forward + backward of a sum), the same shapes."""
    def p(*shape):
        return torch.randn(*shape, requires_grad=True)
    x, w, b = p(2048, 128), p(512, 128), p(512)
    img, k = p(32, 32, 16, 16), p(64, 32, 3, 3)
    q, kk, v = p(32, 4, 64, 32), p(32, 4, 64, 32), p(32, 4, 64, 32)
    qkv = p(32, 64, 384)
    ln, g, beta = p(2048, 128), p(128), p(128)
    sm = p(512, 256)
    gn, gw, gb = p(32, 64, 16, 16), p(64), p(64)
    e = p(32, 64, 32, 32)

    def self_attention():
        q_, k_, v_ = qkv.reshape(32, 64, 3, 4, 32).permute(2, 0, 3, 1, 4).unbind(0)
        F.scaled_dot_product_attention(q_, k_, v_).transpose(1, 2).reshape(32, 64, 128).sum().backward()

    return {
        "linear": lambda: F.linear(x, w, b).sum().backward(),
        "conv2d 3x3 pad 1": lambda: F.conv2d(img, k, padding=1).sum().backward(),
        "attention": lambda: F.scaled_dot_product_attention(q, kk, v).sum().backward(),
        "self-attention from qkv": self_attention,
        "layer norm": lambda: F.layer_norm(ln, (128,), g, beta).sum().backward(),
        "softmax": lambda: sm.softmax(-1).square().sum().backward(),
        "group norm (32 groups)": lambda: F.group_norm(gn, 32, gw, gb).sum().backward(),
        "gelu": lambda: F.gelu(e).sum().backward(),
    }


def conv_function(name):
    """One convolution path of `lethe bench --convolutions`, named `x=N,C,H,W;w=O,C,K,K;s=S;p=P;path=P`
    (path: forward, input (the gradient of the input, forward included), weight (of the weights)).
    PyTorch runs float32 CPU convolutions through oneDNN (mkldnn)."""
    spec = dict(kv.split("=") for kv in name.split(";"))
    xs, ws = [int(v) for v in spec["x"].split(",")], [int(v) for v in spec["w"].split(",")]
    stride, padding, path = int(spec["s"]), int(spec["p"]), spec["path"]
    x = torch.randn(*xs, requires_grad=path == "input")
    w = torch.randn(*ws, requires_grad=path == "weight")
    if path == "forward":
        def forward():
            with torch.no_grad():
                F.conv2d(x, w, stride=stride, padding=padding)
        return forward
    return lambda: F.conv2d(x, w, stride=stride, padding=padding).sum().backward()


def onednn_version():
    for line in torch.__config__.show().splitlines():
        if "oneDNN" in line or "MKL-DNN" in line:
            return line.strip().lstrip("- ").strip()
    return "unknown"


STEPS = {"MAE": mae_step, "VQ autoencoder": vq_autoencoder_step, "MAGE": mage_step, "diffusion": diffusion_step}
PRETRAIN = {"MAE": mae_pretrain, "VQ autoencoder": vq_autoencoder_pretrain, "MAGE": mage_pretrain,
            "diffusion": diffusion_pretrain}
COMPLETE = {"MAE": mae_complete, "VQ autoencoder": vq_autoencoder_complete, "MAGE": mage_complete,
            "diffusion": diffusion_complete}
WORK = {"step": STEPS, "pretrain": PRETRAIN, "complete": COMPLETE}


def serve():
    """Times on request, so that `lethe bench` can alternate its own measurements with these ones and
    both sides see the same machine: reads lines `step<TAB>NAME<TAB>SECONDS` or `op<TAB>NAME<TAB>SECONDS`
    (or `pretrain` / `complete` for a pretraining step / a batch of completions, by model name) from stdin
    and answers each with one JSON line {"model" or "op", "ms", "torch"} (best time over SECONDS, after
    one warm-up call). Models are built on first use, each from seed 0."""
    work, ops, convs = {}, None, {}
    print(json.dumps({"ready": True, "torch": torch.__version__, "onednn": onednn_version(),
                      "mkldnn": torch.backends.mkldnn.is_available()}), flush=True)
    for line in sys.stdin:
        kind, name, seconds = line.rstrip("\n").split("\t")
        if kind in WORK:
            if (kind, name) not in work:
                torch.manual_seed(0)
                work[(kind, name)] = WORK[kind][name]()[2]
            fn, key = work[(kind, name)], "model"
        elif kind == "conv":
            if name not in convs:
                torch.manual_seed(0)
                convs[name] = conv_function(name)
            fn, key = convs[name], "conv"
        else:
            if ops is None:
                torch.manual_seed(0)
                ops = op_functions()
            fn, key = ops[name], "op"
        print(json.dumps({key: name, "ms": best_ms(fn, float(seconds)), "torch": torch.__version__}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--ops", action="store_true", help="time the op families instead of the steps")
    ap.add_argument("--serve", action="store_true", help="answer timing requests on stdin (used by `lethe bench`)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        serve()
        return
    torch.manual_seed(0)
    if args.ops:
        for name, fn in op_functions().items():
            print(json.dumps({"op": name, "ms": best_ms(fn, args.seconds), "torch": torch.__version__}), flush=True)
        return
    for kind, table in WORK.items():
        for name, make in table.items():
            torch.manual_seed(0)
            _, model, step = make()
            print(json.dumps({"work": kind, "model": name, "parameters": sum(p.numel() for p in model.parameters()),
                              "threads": args.threads, "ms": best_ms(step, args.seconds),
                              "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
