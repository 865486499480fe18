"""`python -m emulators.aws --host 127.0.0.1 --port 5000`: DynamoDB and S3 locally."""

from __future__ import annotations

import argparse

from emulators.aws.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.aws", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    print(f"AWS stand-in (moto: DynamoDB, S3) on http://{args.host}:{args.port}", flush=True)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
