"""Turn the Wycheproof JSON vectors (tests/vectors/wycheproof/) into the line format test_wycheproof.c reads.

One vector a line, fields separated by one space, byte strings in hex ("-" for an empty one):
    aead ALG TCID RESULT KEY IV AAD MSG CT TAG     (ALG: aes-gcm or chacha20-poly1305)
    hkdf - TCID RESULT IKM SALT INFO SIZE OKM
RESULT is valid, invalid or acceptable. Usage: wycheproof_to_txt.py VECTOR_DIR OUT_FILE (stdlib only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

AEAD_FILES = {"aes_gcm_test.json": "aes-gcm", "chacha20_poly1305_test.json": "chacha20-poly1305"}
HKDF_FILE = "hkdf_sha1_test.json"


def hx(value: str) -> str:
    return value if value else "-"


def lines(vector_dir: Path) -> list[str]:
    out: list[str] = []
    for name, alg in AEAD_FILES.items():
        data = json.loads((vector_dir / name).read_text(encoding="utf-8"))
        for group in data["testGroups"]:
            for t in group["tests"]:
                out.append(" ".join(["aead", alg, str(t["tcId"]), t["result"], hx(t["key"]), hx(t["iv"]),
                                     hx(t["aad"]), hx(t["msg"]), hx(t["ct"]), hx(t["tag"])]))
    data = json.loads((vector_dir / HKDF_FILE).read_text(encoding="utf-8"))
    for group in data["testGroups"]:
        for t in group["tests"]:
            out.append(" ".join(["hkdf", "-", str(t["tcId"]), t["result"], hx(t["ikm"]), hx(t["salt"]),
                                 hx(t["info"]), str(t["size"]), hx(t["okm"])]))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: wycheproof_to_txt.py VECTOR_DIR OUT_FILE", file=sys.stderr)
        return 2
    text = "\n".join(lines(Path(argv[1]))) + "\n"
    Path(argv[2]).write_text(text, encoding="ascii")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
