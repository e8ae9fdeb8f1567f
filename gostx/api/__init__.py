"""`-api` / YAML `api:`: gost's web API (routes and JSON shapes of go-gost/x api/), served on the control loop.

    GET    /config[?format=json|yaml]      the running config, as `-O` prints it
    POST   /config[?format=yaml|json&path=FILE]   save it (gost.yaml / gost.json in the working directory)
    POST   /config/{services,chains,hops,bypasses}          create (body: the object, as in a config file)
    PUT    /config/{services,chains,hops,bypasses}/NAME     replace
    DELETE /config/{services,chains,hops,bypasses}/NAME     delete

Changes apply at runtime (gostx/api/changes.py): a new service starts, a deleted one stops and frees its
port or device, a replaced chain/hop/bypass is used by new connections only; other services never restart.
"""
