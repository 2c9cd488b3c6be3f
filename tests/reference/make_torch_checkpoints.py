#!/usr/bin/env python3
"""Generate the PyTorch checkpoint fixtures of tests/test_io_torch.cpp under tests/reference/torch/.

A tiny TokenFormer model in the official state-dict layout (2 layers, hidden 16, 2 heads, vocabulary
40), saved by torch.save (the zip format: <prefix>/data.pkl, <prefix>/data/<key>) in several ways:

  model_f32.bin         F32, an OrderedDict with the _metadata attribute of Module.state_dict()
                        (a BUILD opcode), prefix = the file's stem
  model_f16.bin         F16, the zip rewritten with the prefix "archive/" (64-byte aligned stored
                        entries) plus a "byteorder" entry as newer PyTorch versions write it
  model_bf16.bin        BF16, a plain dict of nn.Parameter values (_rebuild_parameter)
  shared_storage.bin    F32, every tensor a view at its own offset into one flat storage, plus
                        extra tensors: a 0-d scalar view, an empty view, a [1, 4] view whose size-1
                        dimension has stride 999, and a non-tensor value
  transposed.bin        a non-contiguous tensor (a transpose): must be refused
  malicious.bin         a valid zip whose data.pkl calls posix.system (GLOBAL + REDUCE); loading it
                        must refuse the global and run nothing (the command would create
                        /tmp/tokenformer_torch_pickle_was_executed)
  model.safetensors     the F32 twin (the same values), written by the small writer of
                        tokenformer_reference.py; model_f16.safetensors, model_bf16.safetensors: the
                        rounded twins (the bits torch stored)
  config.json           a Hugging Face hub style config: no vocab_size (the embedding's rows give
                        it), with seq_length, torch_dtype, architectures, model_type, ...
  tokens.txt            two sequences of 9 tokens
  logits_{f32,f16,bf16}.f32  float32 logits [2, 9, 40] of the float64 reference forward
                        (tokenformer_reference.py) from the weights as stored in each dtype

Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 make_torch_checkpoints.py [output_dir]
"""

import collections
import io
import json
import os
import pickletools
import struct
import sys
import tempfile
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as ref  # noqa: E402

SEED = 4242
VOCAB = 40
BATCH, SEQ_LEN = 2, 9
PWNED = "/tmp/tokenformer_torch_pickle_was_executed"

CONFIG = dict(
    num_layers=2, hidden_size=16, num_attention_heads=2, qkv_slot_num=8, proj_slot_num=6, ffn_slot_num=12,
    rotary_pct=0.25, norm_activation_type="l2_norm_gelu", layernorm_epsilon=1e-5)

HUB_CONFIG = dict(CONFIG)
HUB_CONFIG.update({
    "seq_length": 2048, "max_position_embeddings": 2048, "pos_emb": "rotary", "norm": "layernorm_nonparam",
    "final_norm": "layernorm", "no_weight_tying": False, "gpt_j_residual": False, "torch_dtype": "float32",
    "architectures": ["TokenFormerForCausalLM"], "model_type": "tokenformer", "transformers_version": "4.40.0",
})


def sample_weights(gen):
    """float32 weights in official names and order (as make_golden.py samples them)."""
    wk, bk = ref.final_norm_keys(CONFIG["num_layers"])
    out = collections.OrderedDict()
    for name, shape in ref.expected_shapes(CONFIG, VOCAB):
        z = torch.randn(*shape, generator=gen, dtype=torch.float32)
        if name == ref.EMBEDDING_KEY:
            t = z * 0.5
        elif name.endswith("key_param_tokens"):
            t = z * 0.5
        elif name.endswith("value_param_tokens"):
            t = z * 0.2
        elif name == wk:
            t = 1.0 + z * 0.2
        else:
            assert name == bk
            t = z * 0.2
        out[name] = t
    return out


def torch_save_bytes(obj, stem):
    """torch.save to a file named <stem>.bin (torch names the archive's top folder after the file's
    stem; a buffer would get "archive"), returned as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, stem + ".bin")
        torch.save(obj, path)
        with open(path, "rb") as f:
            data = f.read()
    assert data.startswith(b"PK\x03\x04") and (stem + "/data.pkl").encode() in data
    return data


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def aligned_zip(entries, alignment=64):
    """A stored (uncompressed) zip of (name, bytes) whose entry data start at multiples of `alignment`,
    padded with an extra field in the local header (as PyTorch pads with its 'FB' field)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            header_end = out.tell() + 30 + len(name.encode("utf-8")) + 4
            pad = (-header_end) % alignment
            info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
            zf.writestr(info, data)
    return out.getvalue()


def with_prefix(data, prefix, extra_entries=()):
    """The torch zip `data` with its top folder renamed to `prefix`."""
    src = zipfile.ZipFile(io.BytesIO(data))
    entries = []
    for info in src.infolist():
        rest = info.filename.split("/", 1)[1]
        entries.append((prefix + "/" + rest, src.read(info)))
    entries.extend((prefix + "/" + n, d) for n, d in extra_entries)
    return aligned_zip(entries)


def check_alignment(data):
    zf = zipfile.ZipFile(io.BytesIO(data))
    for info in zf.infolist():
        (name_len, extra_len) = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
        assert start % 64 == 0, (info.filename, start)
        assert info.compress_type == zipfile.ZIP_STORED


def rounded(weights, dtype):
    return collections.OrderedDict((k, v.to(dtype)) for k, v in weights.items())


def raw_bytes(t):
    """The little-endian bytes torch stores for tensor t."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().tobytes()


def twin(path, weights, dtype_name):
    ref.write_safetensors(path, [(k, dtype_name, list(v.shape), raw_bytes(v)) for k, v in weights.items()])


def malicious_pickle():
    """Protocol 2: posix.system('touch PWNED') as the whole pickle. Written by hand (never pickled from a
    live object), disassembled below to show what it is."""
    cmd = ("touch " + PWNED).encode()
    return (b"\x80\x02" + b"cposix\nsystem\n" + b"q\x00" + b"X" + struct.pack("<I", len(cmd)) + cmd +
            b"\x85" + b"R" + b".")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "torch")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    weights = sample_weights(gen)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=gen)

    # F32, as Module.state_dict() returns it: an OrderedDict carrying _metadata (pickled with BUILD).
    f32 = collections.OrderedDict(weights)
    f32._metadata = collections.OrderedDict([("", {"version": 1})])
    data = torch_save_bytes(f32, "model_f32")
    assert b"\x62\x2e" in data  # BUILD then STOP: the _metadata state
    write(os.path.join(out_dir, "model_f32.bin"), data)
    twin(os.path.join(out_dir, "model.safetensors"), weights, "F32")

    # F16 with the "archive/" prefix.
    f16 = rounded(weights, torch.float16)
    data = with_prefix(torch_save_bytes(f16, "model_f16"), "archive", [("byteorder", b"little")])
    check_alignment(data)
    write(os.path.join(out_dir, "model_f16.bin"), data)
    twin(os.path.join(out_dir, "model_f16.safetensors"), f16, "F16")

    # BF16 as a plain dict of parameters.
    bf16 = rounded(weights, torch.bfloat16)
    params = {k: torch.nn.Parameter(v, requires_grad=True) for k, v in bf16.items()}
    data = torch_save_bytes(params, "model_bf16")
    assert b"_rebuild_parameter" in data
    write(os.path.join(out_dir, "model_bf16.bin"), data)
    twin(os.path.join(out_dir, "model_bf16.safetensors"), bf16, "BF16")

    # Every tensor a view into one flat storage, in reverse name order so offsets are not monotone in
    # the dict order; plus odd-but-contiguous extras.
    flat = torch.cat([v.flatten() for v in weights.values()])
    shared = collections.OrderedDict()
    offset = 0
    views = {}
    for k, v in weights.items():
        views[k] = flat[offset:offset + v.numel()].view(v.shape)
        offset += v.numel()
    for k in reversed(list(weights.keys())):
        shared[k] = views[k]
    shared["extra.scalar"] = flat[5]
    shared["extra.empty"] = flat[flat.numel():]
    shared["extra.unit_dim"] = flat.as_strided((1, 4), (999, 1), 7)
    shared["extra.not_a_tensor"] = 3
    data = torch_save_bytes(shared, "shared_storage")
    back = torch.load(io.BytesIO(data))
    assert back["extra.unit_dim"].stride() == (999, 1) and back["extra.empty"].storage_offset() == flat.numel()
    assert len({back[k].storage().data_ptr() for k in weights}) == 1
    write(os.path.join(out_dir, "shared_storage.bin"), data)

    # A transpose: not contiguous.
    gen2 = torch.Generator().manual_seed(7)
    transposed = collections.OrderedDict([("fine", torch.randn(2, 3, generator=gen2)),
                                          ("transposed.weight", torch.randn(4, 3, generator=gen2).t())])
    write(os.path.join(out_dir, "transposed.bin"), torch_save_bytes(transposed, "transposed"))

    # A hostile data.pkl in an otherwise valid archive.
    evil = malicious_pickle()
    pickletools.dis(evil, out=io.StringIO())  # well-formed
    assert b"cposix\nsystem\n" in evil
    write(os.path.join(out_dir, "malicious.bin"),
          aligned_zip([("malicious/data.pkl", evil), ("malicious/version", b"3\n")]))

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(HUB_CONFIG, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "tokens.txt"), "w") as f:
        for row in tokens.tolist():
            f.write(",".join(str(t) for t in row) + "\n")
    for name, sd in (("f32", weights), ("f16", f16), ("bf16", bf16)):
        logits = ref.tokenformer_forward(sd, CONFIG, tokens)
        assert tuple(logits.shape) == (BATCH, SEQ_LEN, VOCAB) and torch.isfinite(logits).all()
        write(os.path.join(out_dir, "logits_%s.f32" % name), logits.numpy().astype("<f4").tobytes())

    # torch itself reads every file back to the values we meant.
    for name, sd in (("model_f32.bin", weights), ("model_f16.bin", f16), ("model_bf16.bin", bf16),
                     ("shared_storage.bin", weights)):
        back = torch.load(os.path.join(out_dir, name))
        for k, v in sd.items():
            assert torch.equal(back[k], v), (name, k)
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(out_dir)), total, out_dir))


if __name__ == "__main__":
    main()
