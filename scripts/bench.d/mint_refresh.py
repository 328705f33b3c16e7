#!/usr/bin/python3
"""Pre-mint refresh tokens for the refresh benchmark of our backend.

    /usr/bin/python3 scripts/bench.d/mint_refresh.py --key-dir DIR --dsn DSN
                     --user-id ID --count N --out FILE

A refresh token works once (rotation), so the bench needs one per request.
Logging in N times would cost N argon2 hashes; instead this signs N tokens
with the instance's signing key exactly as shared/jwt.c does (header
{"alg":"EdDSA","typ":"JWT","kid":...}, claims token_type, exp, iat, jti,
user_id, fam) and inserts the rows auth.refresh looks up: one token family
per token (as N separate logins: refreshes of different sessions do not queue
on one family row) and its refresh_tokens row. Writes one token a line.
"""
import argparse
import base64
import io
import json
import sys
import time
import uuid

import psycopg2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key-dir", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--user-id", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--ttl", type=int, default=86400)
    ap.add_argument("--out", required=True)
    opts = ap.parse_args()

    with open(f"{opts.key_dir}/signing.key") as f:
        lines = f.read().split()
    secret, kid = bytes.fromhex(lines[0]), lines[1]
    if len(secret) != 64:
        sys.exit("signing.key: line 1 is not a 64-byte key in hex")
    key = Ed25519PrivateKey.from_private_bytes(secret[:32])
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if pub != secret[32:]:
        sys.exit("signing.key: the seed does not give the stored public key")

    t0 = time.monotonic()
    now = int(time.time())
    exp = now + opts.ttl
    header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid},
                            separators=(",", ":")).encode())
    fams, rts = io.StringIO(), io.StringIO()
    with open(opts.out, "w") as out:
        for _ in range(opts.count):
            fam, jti = str(uuid.uuid4()), str(uuid.uuid4())
            claims = {"token_type": "refresh", "exp": exp, "iat": now, "jti": jti,
                      "user_id": opts.user_id, "fam": fam}
            signing_input = header + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
            out.write(signing_input + "." + b64(key.sign(signing_input.encode())) + "\n")
            fams.write(f"{fam}\t{opts.user_id}\t{exp}\n")
            rts.write(f"{jti}\t{fam}\t{exp}\n")

    conn = psycopg2.connect(opts.dsn)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE mint_f (id uuid, user_id bigint, exp bigint) ON COMMIT DROP")
    cur.execute("CREATE TEMP TABLE mint_r (jti uuid, family_id uuid, exp bigint) ON COMMIT DROP")
    fams.seek(0)
    rts.seek(0)
    cur.copy_expert("COPY mint_f FROM STDIN", fams)
    cur.copy_expert("COPY mint_r FROM STDIN", rts)
    cur.execute("INSERT INTO token_families (id, user_id, expires_at) "
                "SELECT id, user_id, to_timestamp(exp) FROM mint_f")
    cur.execute("INSERT INTO refresh_tokens (jti, family_id, expires_at) "
                "SELECT jti, family_id, to_timestamp(exp) FROM mint_r")
    conn.commit()
    print(f"minted {opts.count} refresh tokens for user {opts.user_id} in "
          f"{time.monotonic() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
