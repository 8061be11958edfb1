"""Kafka bridge entry point: `python kafka_bridge.py`.

Consumes `booking-requests`, records each request durably and wakes the allocation
task of its partition. Only meaningful with PIPELINE=kafka; the embedded default
runs the same services in-process.
"""

import sys

from atomicseats import create_app


def main() -> int:
    app = create_app()
    if app.config["PIPELINE"] != "kafka":
        print("kafka_bridge: PIPELINE is 'embedded' (set KAFKA_BROKERS to run the Kafka pipeline)", file=sys.stderr)
        return 2
    from atomicseats.bridge import run_bridge

    return run_bridge(app)


if __name__ == "__main__":
    sys.exit(main())
