"""`python -m emulators.chime --host 127.0.0.1 --port 9911`: the Chime SDK emulator alone."""

from __future__ import annotations

import argparse

import uvicorn

from emulators.chime.app import KEEP_ALIVE_SECONDS, create_app
from emulators.chime.config import EmulatorConfig
from emulators.chime.emulator import Emulator


def main(argv: list[str] | None = None) -> int:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m emulators.chime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9911)
    parser.add_argument("--meeting-idle-seconds", type=float, default=defaults.meeting_idle_seconds)
    parser.add_argument("--meeting-max-seconds", type=float, default=defaults.meeting_max_seconds)
    parser.add_argument("--account-id", default=defaults.account_id)
    parser.add_argument(
        "--messaging-endpoint",
        default=None,
        help="host:port that GetMessagingSessionEndpoint answers (default: the request's Host)",
    )
    parser.add_argument(
        "--events-endpoint",
        default=None,
        help="EventBridge endpoint URL for meeting lifecycle events (default: not published)",
    )
    parser.add_argument("--event-bus-name", default=defaults.event_bus_name)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = EmulatorConfig()
    try:
        config.update(
            {
                "meeting_idle_seconds": args.meeting_idle_seconds,
                "meeting_max_seconds": args.meeting_max_seconds,
                "account_id": args.account_id,
                "messaging_endpoint": args.messaging_endpoint,
                "events_endpoint": args.events_endpoint,
                "event_bus_name": args.event_bus_name,
            }
        )
    except ValueError as exc:
        parser.error(str(exc))
    app = create_app(Emulator(config=config))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
