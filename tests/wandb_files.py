"""Read a W&B offline run's transaction log (``offline-run-*/run-*.wandb``) back into records.

wandb >= 0.19 writes the log from its Go core and no longer ships a Python reader. The file is
LevelDB's log format (32 KiB blocks of records with 7-byte headers: CRC32C, length, type
FULL/FIRST/MIDDLE/LAST) behind a 7-byte ``:W&B`` header; each record is a protobuf
``wandb.proto.wandb_internal_pb2.Record``, parsed with wandb's own message classes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> list:
    """Every ``Record`` of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding to the block's end
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def read_run(run_dir: Path) -> dict:
    """``{"group", "config", "history" (list of dicts), "summary"}`` of the one offline run under
    ``run_dir/wandb``."""
    logs = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 1, logs
    out: dict = {"group": None, "config": {}, "history": [], "summary": {}}
    for rec in records(logs[0]):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["group"] = rec.run.run_group
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update if i.key != "_wandb"})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in rec.summary.update})
    return out
