"""Load an ofa checkpoint into PyTorch, without the Go code.

A checkpoint is a safetensors file (docs/FORMAT.md). Its "__metadata__" holds the
architecture as JSON under "arch"; the tensor names follow timm's VisionTransformer,
plus "positions.<p>.*" for expanded models. This module reads the file with json and
numpy only (no safetensors package needed) and builds an equivalent torch.nn.Module.

    import ofa_torch
    model, meta = ofa_torch.load("runs/x/supernet.safetensors")
    logits = model(images)   # images: (B, C, H, W), normalised with meta["preprocess"]
    x = ofa_torch.normalize(pixels_uint8, meta)   # (B, C, H, W) uint8 -> model input
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """Return (metadata dict, {name: np.ndarray float32})."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        buf = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        tensors[name] = np.frombuffer(buf[b:e], dtype="<f4").reshape(info["shape"]).copy()
    return meta, tensors


class OFAViT(torch.nn.Module):
    """The pre-LayerNorm ViT described by an ofa architecture JSON."""

    def __init__(self, arch, tensors):
        super().__init__()
        self.arch = arch
        self.p = torch.nn.ParameterDict(
            {k.replace(".", "__"): torch.nn.Parameter(torch.from_numpy(v)) for k, v in tensors.items()})

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def forward(self, x, subnet=None):
        a = self.arch
        B = x.shape[0]
        ph, pw = a["patch_height"], a["patch_width"]
        d, dh = a["dim"], a["head_dim"]
        # patches in (channel, row, column) order == Conv2d(kernel=stride=patch)
        pe = self.w("patch_embed.weight").reshape(d, a["in_channels"], ph, pw)
        t = F.conv2d(x, pe, self.w("patch_embed.bias"), stride=(ph, pw))  # (B, D, gh, gw)
        t = t.flatten(2).transpose(1, 2)  # (B, P, D)
        cls = self.w("cls_token").reshape(1, 1, d).expand(B, 1, d)
        t = torch.cat([cls, t], dim=1) + self.w("pos_embed").unsqueeze(0)
        eps = a["norm_eps"]
        if a.get("positions"):
            blocks = [(p["layer"], f"positions.{i}.", a["layers"][p["layer"]]["heads"],
                       a["layers"][p["layer"]]["mlp"], p) for i, p in enumerate(a["positions"])]
        else:
            layers = subnet["layers"] if subnet else [
                {"layer": i, "heads": l["heads"], "mlp": l["mlp"]} for i, l in enumerate(a["layers"])]
            blocks = [(l["layer"], f"blocks.{l['layer']}.", l["heads"], l["mlp"], {}) for l in layers]
        for layer, npre, h, m, pos in blocks:
            wpre = f"blocks.{layer}."
            full_h = a["layers"][layer]["heads"]
            y = F.layer_norm(t, (d,), self.w(npre + "norm1.weight"), self.w(npre + "norm1.bias"), eps)
            if pos.get("affine"):
                y = y * self.w(npre + "affine.in_scale") + self.w(npre + "affine.in_shift")
            qkv_w = self.w(wpre + "attn.qkv.weight").reshape(3, full_h * dh, d)[:, : h * dh]
            qkv_b = self.w(wpre + "attn.qkv.bias").reshape(3, full_h * dh)[:, : h * dh]
            qkv = torch.einsum("btd,sod->sbto", y, qkv_w) + qkv_b[:, None, None, :]
            q, k, v = (z.reshape(B, -1, h, dh).transpose(1, 2) for z in qkv)  # (B, h, T, dh)
            s = q @ k.transpose(-1, -2) / math.sqrt(dh)
            if pos.get("head_mix"):
                s = torch.einsum("ij,bjts->bits", self.w(npre + "headmix.pre"), s)
            p_ = s.softmax(-1)
            if pos.get("head_mix"):
                p_ = torch.einsum("ij,bjts->bits", self.w(npre + "headmix.post"), p_)
            o = (p_ @ v).transpose(1, 2).reshape(B, -1, h * dh)
            o = F.linear(o, self.w(wpre + "attn.proj.weight")[:, : h * dh], self.w(wpre + "attn.proj.bias"))
            if pos.get("affine"):
                o = o * self.w(npre + "affine.attn_scale") + self.w(npre + "affine.attn_shift")
            t = t + o
            y = F.layer_norm(t, (d,), self.w(npre + "norm2.weight"), self.w(npre + "norm2.bias"), eps)
            y = F.linear(y, self.w(wpre + "mlp.fc1.weight")[:m], self.w(wpre + "mlp.fc1.bias")[:m])
            y = F.gelu(y, approximate="tanh")
            y = F.linear(y, self.w(wpre + "mlp.fc2.weight")[:, :m], self.w(wpre + "mlp.fc2.bias"))
            if pos.get("affine"):
                y = y * self.w(npre + "affine.mlp_scale") + self.w(npre + "affine.mlp_shift")
            t = t + y
            if pos.get("low_rank"):
                t = t + F.linear(F.linear(t, self.w(npre + "lowrank.down")), self.w(npre + "lowrank.up"))
        t = F.layer_norm(t, (d,), self.w("norm.weight"), self.w("norm.bias"), eps)
        return F.linear(t[:, 0], self.w("head.weight"), self.w("head.bias"))


def normalize(pixels, meta):
    """Turn uint8 pixels (B, C, H, W) into the model's input: (pixel/255 - mean[c]) / std[c],
    with per-channel statistics ("channel_mean", "channel_std") when the file has them and
    the scalars ("mean", "std") for every channel otherwise (files written before them)."""
    pre = meta["preprocess"]
    c = pixels.shape[1]
    mean = torch.tensor(pre.get("channel_mean") or [pre["mean"]] * c, dtype=torch.float32).view(1, c, 1, 1)
    std = torch.tensor(pre.get("channel_std") or [pre["std"]] * c, dtype=torch.float32).view(1, c, 1, 1)
    return (torch.as_tensor(pixels).float() / 255 - mean) / std


def load(path):
    meta, tensors = read_safetensors(path)
    arch = json.loads(meta["arch"])
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    return OFAViT(arch, model_tensors), {k: (json.loads(v) if k in ("arch", "space", "preprocess") else v)
                                         for k, v in meta.items()}


if __name__ == "__main__":
    m, meta = load(sys.argv[1])
    n = sum(p.numel() for p in m.parameters())
    print(f"{sys.argv[1]}: {meta.get('kind')} model, {n} parameters")
