#!/usr/bin/python3
"""Numpy quantizers for GGUF block types and MLX affine quantization, and a safetensors writer.

Shared by write_gguf.py and quantize_mlx.py. Every quantizer returns the packed bytes exactly
as the file format stores them and the dequantized float32 values those bytes hold, so that a
reference forward pass can run on what the file really contains. Quantization is simple round
to nearest with min/max scales; the layouts are the published ones.
"""

import struct

import numpy as np

import make_model  # the safetensors header layout, shared with the HF model writer

# name -> (ggml type id, weights per block, bytes per block)
GGML_TYPES = {
    "F32": (0, 1, 4),
    "F16": (1, 1, 2),
    "Q4_0": (2, 32, 18),
    "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144),
    "Q6_K": (14, 256, 210),
    "BF16": (30, 1, 2),
}


def _F16(x):
    return x.astype(np.float16)


def _Rint(x):
    return np.rint(x)  # round half to even, as the C++ code does


def _SafeDiv(a, b):
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape, np.float32), where=b != 0)


def ToBf16(x):
    """float32 -> uint16 bf16 bits (round to nearest even)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def FromBf16(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def QuantizeQ8_0(x):
    """x: [n, K] float32 -> (bytes [n, K/32*34] uint8, dequantized [n, K] float32)."""
    n, k = x.shape
    b = x.reshape(n, k // 32, 32)
    d = _F16(np.abs(b).max(-1) / 127.0)
    q = np.clip(_Rint(_SafeDiv(b, d.astype(np.float32)[..., None])), -127, 127).astype(np.int8)
    out = np.empty((n, k // 32, 34), np.uint8)
    out[..., :2] = d.view(np.uint8).reshape(n, k // 32, 2)
    out[..., 2:] = q.view(np.uint8)
    deq = d.astype(np.float32)[..., None] * q.astype(np.float32)
    return out.reshape(n, -1), deq.reshape(n, k)


def QuantizeQ4_0(x):
    n, k = x.shape
    b = x.reshape(n, k // 32, 32)
    idx = np.abs(b).argmax(-1)
    vmax = np.take_along_axis(b, idx[..., None], -1)[..., 0]
    d = _F16(vmax / -8.0)
    q = np.clip(_Rint(_SafeDiv(b, d.astype(np.float32)[..., None])) + 8, 0, 15).astype(np.uint8)
    out = np.empty((n, k // 32, 18), np.uint8)
    out[..., :2] = d.view(np.uint8).reshape(n, k // 32, 2)
    out[..., 2:] = q[..., :16] | (q[..., 16:] << 4)
    deq = d.astype(np.float32)[..., None] * (q.astype(np.float32) - 8)
    return out.reshape(n, -1), deq.reshape(n, k)


def QuantizeQ4_K(x):
    n, k = x.shape
    nb = k // 256
    b = x.reshape(n, nb, 8, 32)
    lo = np.minimum(b.min(-1), 0)
    hi = np.maximum(b.max(-1), 0)
    scale = (hi - lo) / 15.0
    minv = -lo
    d = _F16(scale.max(-1) / 63.0)
    dmin = _F16(minv.max(-1) / 63.0)
    df, dminf = d.astype(np.float32), dmin.astype(np.float32)
    sc = np.clip(_Rint(_SafeDiv(scale, df[..., None])), 0, 63).astype(np.uint8)
    m = np.clip(_Rint(_SafeDiv(minv, dminf[..., None])), 0, 63).astype(np.uint8)
    s = df[..., None] * sc.astype(np.float32)  # [n, nb, 8]
    mn = dminf[..., None] * m.astype(np.float32)
    q = np.clip(_Rint(_SafeDiv(b + mn[..., None], s[..., None])), 0, 15).astype(np.uint8)
    scales = np.zeros((n, nb, 12), np.uint8)
    scales[..., 0:4] = sc[..., 0:4] | ((sc[..., 4:8] >> 4) << 6)
    scales[..., 4:8] = m[..., 0:4] | ((m[..., 4:8] >> 4) << 6)
    scales[..., 8:12] = (sc[..., 4:8] & 0xF) | ((m[..., 4:8] & 0xF) << 4)
    qs = q[..., 0::2, :] | (q[..., 1::2, :] << 4)  # [n, nb, 4, 32]
    out = np.empty((n, nb, 144), np.uint8)
    out[..., 0:2] = d.view(np.uint8).reshape(n, nb, 2)
    out[..., 2:4] = dmin.view(np.uint8).reshape(n, nb, 2)
    out[..., 4:16] = scales
    out[..., 16:] = qs.reshape(n, nb, 128)
    deq = s[..., None] * q.astype(np.float32) - mn[..., None]
    return out.reshape(n, -1), deq.reshape(n, k)


def QuantizeQ6_K(x):
    n, k = x.shape
    nb = k // 256
    b = x.reshape(n, nb, 16, 16)
    sub = np.abs(b).max(-1) / 31.0
    d = _F16(sub.max(-1) / 127.0)
    df = d.astype(np.float32)
    sc = np.clip(_Rint(_SafeDiv(sub, df[..., None])), -128, 127).astype(np.int8)
    s = df[..., None] * sc.astype(np.float32)
    q = (np.clip(_Rint(_SafeDiv(b, s[..., None])), -32, 31) + 32).astype(np.uint8)
    q = q.reshape(n, nb, 2, 128)
    ql = np.empty((n, nb, 2, 64), np.uint8)
    ql[..., :32] = (q[..., 0:32] & 0xF) | ((q[..., 64:96] & 0xF) << 4)
    ql[..., 32:] = (q[..., 32:64] & 0xF) | ((q[..., 96:128] & 0xF) << 4)
    qh = ((q[..., 0:32] >> 4) | ((q[..., 32:64] >> 4) << 2) | ((q[..., 64:96] >> 4) << 4)
          | ((q[..., 96:128] >> 4) << 6))
    out = np.empty((n, nb, 210), np.uint8)
    out[..., 0:128] = ql.reshape(n, nb, 128)
    out[..., 128:192] = qh.reshape(n, nb, 64)
    out[..., 192:208] = sc.view(np.uint8)
    out[..., 208:210] = d.view(np.uint8).reshape(n, nb, 2)
    deq = s[..., None] * (q.reshape(n, nb, 16, 16).astype(np.float32) - 32)
    return out.reshape(n, -1), deq.reshape(n, k)


def QuantizeGguf(x, type_name):
    """x: [n, K] float32 -> (bytes [n, row_bytes], dequantized values [n, K])."""
    x = np.ascontiguousarray(x, np.float32)
    if type_name == "F32":
        return x.view(np.uint8), x
    if type_name == "F16":
        h = x.astype(np.float16)
        return h.view(np.uint8), h.astype(np.float32)
    if type_name == "BF16":
        h = ToBf16(x)
        return h.view(np.uint8), FromBf16(h)
    fn = {"Q8_0": QuantizeQ8_0, "Q4_0": QuantizeQ4_0, "Q4_K": QuantizeQ4_K,
          "Q6_K": QuantizeQ6_K}[type_name]
    return fn(x)


def QuantizeMlx(w, bits, group_size):
    """MLX affine quantization of w: [n, K] -> (packed uint32 [n, K*bits/32], scales [n, K/gs],
    biases [n, K/gs], dequantized [n, K]); w = scale * q + bias, lowest bits first."""
    n, k = w.shape
    g = w.reshape(n, k // group_size, group_size)
    lo, hi = g.min(-1), g.max(-1)
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).astype(np.float32)
    q = np.clip(_Rint(_SafeDiv(g - lo[..., None], scale[..., None])), 0, levels).astype(np.uint32)
    per = 32 // bits
    q = q.reshape(n, k // per, per)
    packed = np.zeros((n, k // per), np.uint32)
    for i in range(per):
        packed |= q[..., i] << np.uint32(bits * i)
    return packed, scale, lo.astype(np.float32), q.reshape(n, k)


def WriteSafetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array, dtype string "F32"/"F16"/"BF16"/"U32"); BF16 arrays
    are given as uint16 bits."""
    hj, _ = make_model.SafetensorsHeader(
        [(name, dt, arr.shape, arr.nbytes) for name, arr, dt in tensors],
        metadata or {"format": "mlx"})
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for _, arr, _ in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())


def EncodeDtype(x, dt):
    """float32 array -> (array in dtype dt, safetensors dtype string)."""
    if dt == "f32":
        return np.ascontiguousarray(x, np.float32), "F32"
    if dt == "f16":
        return x.astype(np.float16), "F16"
    return ToBf16(x), "BF16"


def DecodeDtype(x, dt):
    if dt == "f32":
        return x.astype(np.float32)
    if dt == "f16":
        return x.astype(np.float32)
    return FromBf16(x)
