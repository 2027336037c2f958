"""Checks sessiongate's X-Session-Signature ([upstream] sign = true). README: "Signed identity header".

verify(method, target, headers, keys): method and target ("/path?query") as received, headers a
{name: value} mapping of the request's headers, keys the byte strings of upstream.sign_key_file.
"""
import base64, hashlib, hmac, time


def verify(method, target, headers, keys, max_skew=60, prefix="x-session-", now=None):
    h = {k.lower(): v for k, v in headers.items()}
    head, *fields = [p.strip() for p in h.get(prefix + "signature", "").split(";")]
    f = dict(p.split("=", 1) for p in fields if "=" in p)
    key = next((k for k in keys if hashlib.sha256(b"sessiongate-kid-v1" + k).hexdigest()[:16] == f.get("kid")), None)
    if head != "v1" or key is None or not f.get("t", "").isdigit() or abs((now or time.time()) - int(f["t"])) > max_skew:
        return False
    signed = sorted((n, v) for n, v in h.items() if n.startswith(prefix) and n != prefix + "signature")
    text = "\n".join(["v1", method, target] + [f"{n}:{v}" for n, v in signed] + [f["t"]])
    mac = base64.urlsafe_b64encode(hmac.new(key, text.encode("latin-1"), hashlib.sha256).digest()).rstrip(b"=")
    return hmac.compare_digest(mac.decode(), f.get("sig", ""))
