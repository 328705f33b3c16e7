#!/usr/bin/python3
"""Pre-mint refresh tokens for the DRF peer's refresh benchmark.

    /usr/bin/python3 scripts/bench.d/drf_mint_refresh.py --peer DIR
                     --username NAME --count N --out FILE

simplejwt also rotates and blacklists, so each request needs its own token.
Instead of N logins (PBKDF2, ~50 ms each) this builds the tokens the peer's
login builds (RefreshToken with is_staff and role, as accounts.serializers.
tokens_for does) with the peer's own settings, and records each as an
OutstandingToken (bulk insert), as a login would. Must run with the
environment the peer's gunicorn was started with (the same signing key:
DJANGO_SECRET_KEY / JWT_SIGNING_KEY unset or equal). One token a line.
"""
import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", required=True)
    ap.add_argument("--username", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    opts = ap.parse_args()

    sys.path.insert(0, opts.peer)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer.settings")
    import django
    django.setup()
    from accounts.models import User
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken
    from rest_framework_simplejwt.utils import datetime_from_epoch

    t0 = time.monotonic()
    user = User.objects.get(username=opts.username)
    rows = []
    with open(opts.out, "w") as out:
        for _ in range(opts.count):
            t = RefreshToken()
            t["user_id"] = user.pk
            t["is_staff"] = user.is_staff
            t["role"] = user.role
            text = str(t)
            out.write(text + "\n")
            rows.append(OutstandingToken(user=user, jti=t["jti"], token=text,
                                         created_at=t.current_time,
                                         expires_at=datetime_from_epoch(t["exp"])))
    OutstandingToken.objects.bulk_create(rows, batch_size=2000)
    print(f"minted {opts.count} DRF refresh tokens for {opts.username} in "
          f"{time.monotonic() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
