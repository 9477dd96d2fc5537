"""Mints and checks edge-scoreboard tokens with PyJWT and the standard library only, the way an
outside game backend would. Used by protocol/tests/it/interop.rs.

usage: tokens.py mint-action SECRET PLAYER ACTION PTS NOW MIN_SECONDS TTL
       tokens.py mint-session SECRET PLAYER NAME NOW TTL
       tokens.py edge-signature SECRET T METHOD PATH BODY
       tokens.py verify-action SECRET TOKEN NOW   (prints the claims as JSON)
"""
import base64, hashlib, hmac, json, secrets, sys

import jwt


def main(argv):
    cmd = argv[1]
    if cmd == "mint-action":
        secret, player, action, pts, now, min_seconds, ttl = argv[2:9]
        now, min_seconds, ttl = int(now), int(min_seconds), int(ttl)
        claims = {"jti": secrets.token_urlsafe(16), "sub": player, "act": action, "pts": int(pts),
                  "iat": now, "nbf": now + min_seconds, "exp": now + ttl}
        print(jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "action+jwt"}))
    elif cmd == "mint-session":
        secret, player, name, now, ttl = argv[2:7]
        now, ttl = int(now), int(ttl)
        claims = {"sub": player, "name": name, "iat": now, "exp": now + ttl,
                  "jti": secrets.token_urlsafe(16)}
        print(jwt.encode(claims, secret, algorithm="HS256"))
    elif cmd == "edge-signature":
        secret, t, method, path, body = argv[2:7]
        body_hash = hashlib.sha256(body.encode()).hexdigest()
        message = f"{t}.{method}.{path}.{body_hash}".encode()
        print(f"t={t},v1={hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}")
    elif cmd == "verify-action":
        secret, token, now = argv[2:5]
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "typ": "action+jwt"}, header
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
        print(json.dumps(claims, sort_keys=True))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
