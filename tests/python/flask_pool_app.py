"""A Flask app for gunicorn (tests/integration/pools.rs): with LEAK_BYTES set, each request to /
keeps that many bytes in a module-level list, in whichever worker handles it."""

import os

from flask import Flask

app = Flask(__name__)
_kept = []
LEAK_BYTES = int(os.environ.get("LEAK_BYTES", "0"))


@app.route("/")
def index():
    if LEAK_BYTES:
        _kept.append(bytearray(LEAK_BYTES))  # LEAK
    return "ok\n"
