"""Decoy: sessions subscribe to the bus and unsubscribe when closed.

Runs until killed and prints nothing.
"""

import time


class EventBus:
    def __init__(self):
        self._handlers = []

    def subscribe(self, handler):
        self._handlers.append(handler)

    def unsubscribe(self, handler):
        self._handlers.remove(handler)

    def publish(self, event):
        for handler in list(self._handlers):
            handler(event)


BUS = EventBus()


class Session:
    def __init__(self, session_id):
        self.session_id = session_id
        self.buffer = bytearray(10_000)
        BUS.subscribe(self.on_event)

    def on_event(self, event):
        self.buffer[0] = event % 256

    def close(self):
        BUS.unsubscribe(self.on_event)


def main():
    session_id = 0
    while True:
        session_id += 1
        session = Session(session_id)
        BUS.publish(session_id)
        session.close()
        time.sleep(0.01)


if __name__ == "__main__":
    main()
