"""Write a tiny timm-style ViT and its logits, for train/dense_test.go.

    python3 timm_vit.py OUT_DIR

writes OUT_DIR/vit.safetensors (the model's state_dict, timm's names and shapes) and
OUT_DIR/batch.safetensors (tensors "images" (B, C, H, W) and "logits" (B, classes)).

The module below mirrors timm's VisionTransformer (class_token=True, qkv_bias=True,
global_pool="token", no LayerScale, no register tokens): PatchEmbed's Conv2d, the class
token before the patches, learned positions, pre-LayerNorm blocks, the final norm and the
head on the class token. It differs from timm's defaults in one place, on purpose: the MLP
uses GELU's tanh approximation, the activation ofa's models use. LayerNorm's epsilon is
timm's 1e-6. The safetensors file is written with json and struct (the format is an
8-byte header length, a JSON header and the raw little-endian float32 data), so the
safetensors package is not needed. Everything is seeded; the logits are computed in
float64 from the float32 weights.
"""
import json
import struct
import sys

import torch
import torch.nn as nn

# the architecture train/dense_test.go builds: 3x8x12 inputs, 4x4 patches (2x3 grid),
# width 16, 4 heads of 4, MLP 24, 2 blocks, 5 classes
C, H, W, PH, PW = 3, 8, 12, 4, 4
DIM, HEADS, MLP, DEPTH, CLASSES = 16, 4, 24, 2, 5
EPS = 1e-6
BATCH = 3


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(C, DIM, kernel_size=(PH, PW), stride=(PH, PW))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, P, D), patches in row-major grid order


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.num_heads = HEADS
        self.head_dim = DIM // HEADS
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(DIM, 3 * DIM, bias=True)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, h, N, dh)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(DIM, MLP)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(MLP, DIM)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=EPS)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=EPS)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        n = (H // PH) * (W // PW)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, DIM))
        self.blocks = nn.Sequential(*[Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=EPS)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        x = self.norm(x)
        return self.head(x[:, 0])


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    model = VisionTransformer()
    # random values everywhere (norms, biases, tokens included), so nothing hides behind a
    # zero or a one
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            scale = 1.0 / fan_in ** 0.5 if p.dim() > 1 else 0.3
            p.copy_(torch.randn_like(p) * scale)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.add_(1.0)
    images = torch.randn(BATCH, C, H, W)
    with torch.no_grad():
        logits = model.double()(images.double())
    write_safetensors(out + "/vit.safetensors", model.state_dict())
    write_safetensors(out + "/batch.safetensors", {"images": images, "logits": logits})


if __name__ == "__main__":
    main()
