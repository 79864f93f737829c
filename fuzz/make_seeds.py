#!/usr/bin/env python3
"""Write small valid seed inputs for each cargo-fuzz target into fuzz/corpus/<target>/.

libFuzzer mutates from these, so it reaches the deep paths of each parser (a valid tar
entry, a valid safetensors header) instead of only rejecting random bytes at the first
check. Needs only the Python standard library.

    python3 fuzz/make_seeds.py && RUSTC_BOOTSTRAP=1 cargo fuzz run imdb_tar -- -max_total_time=60
"""
import io
import json
import struct
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, content in entries:
            info = tarfile.TarInfo(path)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def safetensors_bytes(tensors):
    header, blobs, off = {}, [], 0
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        data = struct.pack(f"<{n}f", *[0.01 * i for i in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def main():
    entries = [("aclImdb", None)]
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            entries.append((f"aclImdb/{split}/{label}", None))
            rating = 9 if label == "pos" else 2
            text = b"A fine film.<br /><br />It works." if label == "pos" else b"Dull, dull, dull!"
            entries.append((f"aclImdb/{split}/{label}/0_{rating}.txt", text))
    put("imdb_tar", "valid.tar", tar_bytes(entries))
    put("imdb_tar", "traversal.tar", tar_bytes(entries + [("aclImdb/../../evil_1.txt", b"x")]))

    # The target loads into LSTM(3, 4): the right names and shapes, and a wrong one.
    lstm = [("weight_ih_l0", [16, 3]), ("weight_hh_l0", [16, 4]), ("bias_ih_l0", [16]), ("bias_hh_l0", [16])]
    put("safetensors", "lstm.safetensors", safetensors_bytes(lstm))
    put("safetensors", "wrong_shape.safetensors", safetensors_bytes([("weight_ih_l0", [4, 3])]))

    put("config_toml", "config.toml", 'cell = "gru"\nhidden_size = 64\nbidirectional = true\n'
        'pool = "mean"\nlr = 0.001\nepochs = 3\nmax_len = 200\n')
    put("config_toml", "course.toml", 'embedding_dim = 100\nnum_layers = 2\ndropout = 0.5\n'
        'optimizer = "adam"\nschedule = "cosine"\n')

    # What Vocab::to_json writes (all three fields are required), and one missing the indices.
    put("vocab_json", "vocab_full.json", json.dumps(
        {"itos": ["<unk>", "<pad>", "the", ".", "film"], "unk_index": 0, "pad_index": 1}))
    put("vocab_json", "vocab.json", json.dumps({"itos": ["<unk>", "<pad>", "the", ".", "film"]}))

    put("csv", "series.csv", "Month,Value\n1949-01,112\n1949-02,118\n1949-03,132\n1949-04,\n1949-05,121\n")
    put("csv", "quoted.csv", '"Date","Value"\n"1981-01-01","20.7"\n"1981-01-02","?0.8"\n')

    put("tokenizer", "review.txt", "I loved it!<br /><br />Don't miss it... 10/10 (really).")
    put("tokenizer", "tsv.txt", "1\tA fine film.\n0\tDull.\npositive\tgreat\n")


if __name__ == "__main__":
    main()
