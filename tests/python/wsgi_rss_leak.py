"""RSS leak in a WSGI app run by an embedding server (uWSGI): every response body is kept.

Each request builds a --body-bytes (100 KiB) zero-filled body (its pages resident at once) and
keeps it in the module-level `_sent_bodies`, "for debugging", forever. The rate is the request
rate times 100 KiB: `cargo xtask matrix` sends 10 requests a second, ~1 MB/s.
Prints READY when the server has loaded it (uWSGI: `--http-socket ADDR --wsgi-file THIS`).
"""

BODY_BYTES = 100 * 1024

# Kept "for debugging", never trimmed.
_sent_bodies = []


def application(environ, start_response):
    body = bytearray(BODY_BYTES)
    _sent_bodies.append(body)  # LEAK
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


print("READY", flush=True)
