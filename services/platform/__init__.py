"""The whole platform in one process (`make run`) and its demo (`make demo`).

`python -m services.platform` serves the four services behind one port, on an
in-process event bus unless `AMQP_URL` is set, with the local stand-ins for
DynamoDB/S3 (moto) and the Chime SDK (Belfry's emulator) embedded unless their
endpoint URLs are configured. `python -m services.platform.demo` plays both
products' stories against a running platform.
"""
