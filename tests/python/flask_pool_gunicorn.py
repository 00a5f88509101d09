"""gunicorn settings for flask_pool_app (tests/integration/pools.rs): prints READY once the
master is ready, as every workload of the tests does."""


def when_ready(server):
    print("READY", flush=True)
