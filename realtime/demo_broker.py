"""The embedded demo broker (amqtt, MQTT 3.1.1) for machines without Mosquitto; never for tests of delivery."""

import argparse
import asyncio
import logging

from amqtt.broker import Broker

logger = logging.getLogger(__name__)


async def serve(port: int) -> None:
    """Run amqtt on loopback until cancelled."""
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    logger.info("amqtt demo broker listening on 127.0.0.1:%s", port)
    await asyncio.Event().wait()


def main() -> None:
    """Parse `--port` and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1883)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
