"""`python -m emulators.aws --host 127.0.0.1 --port 5000`: moto's DynamoDB, S3, SQS and
EventBridge locally."""

from __future__ import annotations

import argparse

from emulators.aws.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.aws", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    where = f"http://{args.host}:{args.port}"
    print(f"AWS stand-in (moto: DynamoDB, S3, SQS, EventBridge) on {where}", flush=True)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
