"""Event handler never unsubscribed: every session subscribes a bound method to a
process-wide bus and is then dropped, but the bus keeps it (and its buffer) alive.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import time


class EventBus:
    def __init__(self):
        self._handlers = []

    def subscribe(self, handler):
        self._handlers.append(handler)

    def publish(self, event):
        for handler in self._handlers[-10:]:
            handler(event)


BUS = EventBus()


class Session:
    def __init__(self, session_id):
        self.session_id = session_id
        self.buffer = bytearray(10_000)
        BUS.subscribe(self.on_event)  # LEAK

    def on_event(self, event):
        self.buffer[0] = event % 256


def main():
    session_id = 0
    while True:
        session_id += 1
        Session(session_id)
        BUS.publish(session_id)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
