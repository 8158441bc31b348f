"""paho-mqtt's network loop on an asyncio event loop, as Home Assistant's MQTT client runs it.

`loop_client(...)` makes a paho `Client` whose `loop_start()` drives it from an asyncio event loop
instead of paho's own thread (paho's "external event loop" interface: homeassistant/components/
mqtt/client.py does the same):

- paho's socket callbacks (`on_socket_open`/`on_socket_close`/`on_socket_register_write`/
  `on_socket_unregister_write`) put its socket on the loop: `loop.add_reader` calls `loop_read`,
  `loop.add_writer` calls `loop_write` while paho has bytes to send;
- `loop_misc` (keepalive pings, a broker that stopped answering) runs once a second;
- a connection attempt (`reconnect`: DNS, TCP, TLS handshake, all blocking) runs in the loop's
  default executor, as Home Assistant's does, so a slow broker never stalls the loop; after a
  failed attempt or a lost connection the next waits with paho's backoff (`reconnect_delay_set`:
  min_delay, doubling up to max_delay, back to min_delay once a connection is accepted). A failed
  attempt calls `on_connect_fail` from inside the `except` that caught it, as paho's own loop does.

So one thread, the loop's, owns the client: every paho call and every callback (`on_connect`,
`on_publish`, `on_message`, ...) happens there, and code on that thread needs no lock of its own
around paho. paho's internal locks stay (replacing them, as Home Assistant does with a null lock,
would mean setting private attributes); uncontended, they cost nanoseconds.

`loop_start(loop)` takes the loop to run on: the caller's running loop (the service's), or, when
there is none (a synchronous caller: `deliver mqtt`, a test, a script), a loop of the client's own
in a background thread ("mqtt-loop"), stopped again by `loop_stop()`. Code elsewhere hands work to
the client's thread with `call_soon` (thread-safe) or `run` (waits for the result).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading

log = logging.getLogger("stresswatch.mqtt")
MISC_EVERY_S = 1.0  # how often loop_misc runs (paho's own loop: at least once a second)


@functools.cache
def _client_class():
    import paho.mqtt.client as mqtt

    class LoopClient(mqtt.Client):
        """paho's Client, its network loop on an asyncio event loop (see the module docstring)."""

        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.loop: asyncio.AbstractEventLoop | None = None
            self._own_thread: threading.Thread | None = None
            self._loop_thread_id: int | None = None
            self._tasks: list[asyncio.Task] = []
            self._closed = asyncio.Event()  # set when the socket closes (bound to a loop on first wait)
            self._delays = (1, 120)  # paho's default reconnect backoff
            self._next_wait: float | None = None  # None: the next wait is the minimum
            self._connecting = False
            self._stay_connected = False  # from `loop_start` until `disconnect`
            self.on_socket_open = self._socket_opened
            self.on_socket_close = self._socket_closed
            self.on_socket_register_write = self._want_write
            self.on_socket_unregister_write = self._written

        # -- paho's interface ----------------------------------------------------------------

        def reconnect_delay_set(self, min_delay: int = 1, max_delay: int = 120) -> None:
            super().reconnect_delay_set(min_delay, max_delay)
            self._delays = (min_delay, max_delay)
            self._next_wait = None

        def disconnect(self, *args, **kw):
            self._stay_connected = False  # no reconnect once the socket closes
            return super().disconnect(*args, **kw)

        def loop_start(self, loop: asyncio.AbstractEventLoop | None = None):
            """Drive the client from `loop`, else from the running loop of this thread, else from a
            loop of its own in a background thread. Connects (after `connect_async`) and keeps the
            connection up until `loop_stop`."""
            if self.loop is not None:
                return mqtt.MQTT_ERR_INVAL
            if loop is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = asyncio.new_event_loop()
                    self._own_thread = threading.Thread(
                        target=loop.run_forever, name="mqtt-loop", daemon=True
                    )
                    self._own_thread.start()
            self.loop = loop
            self._stay_connected = True
            self.call_soon(self._attach)
            return mqtt.MQTT_ERR_SUCCESS

        def loop_stop(self):
            """Stop driving the client: no more reads, writes, pings or reconnects (the socket is
            left as it is, as paho's `loop_stop` leaves it); a loop of its own is stopped."""
            loop = self.loop
            if loop is None:
                return mqtt.MQTT_ERR_INVAL
            if not loop.is_closed():
                if self.on_loop_thread():
                    self._detach()
                else:
                    try:
                        self.run(self._detach)
                    except RuntimeError:  # the loop stopped meanwhile
                        pass
            if self._own_thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                if threading.current_thread() is not self._own_thread:
                    self._own_thread.join(10)
                    loop.close()
                self._own_thread = None
            self.loop = None
            self._loop_thread_id = None
            return mqtt.MQTT_ERR_SUCCESS

        # -- running code on the client's thread ---------------------------------------------

        def on_loop_thread(self) -> bool:
            return self._loop_thread_id is not None and threading.get_ident() == self._loop_thread_id

        def call_soon(self, fn, *args) -> bool:
            """Run `fn(*args)` on the client's loop soon, from any thread; false (and dropped)
            when there is no loop: not started, or stopped."""
            loop = self.loop
            if loop is None or loop.is_closed():
                return False
            try:
                if self.on_loop_thread():
                    loop.call_soon(fn, *args)  # no wake-up of the selector needed
                else:
                    loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # closed between the check and the call
                return False
            return True

        def call_later(self, delay_s: float, fn, *args) -> None:
            """Run `fn(*args)` on the client's loop after `delay_s`; from the loop's thread."""
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_later(delay_s, fn, *args)

        def run(self, fn, *args, timeout: float | None = 30.0):
            """Run `fn(*args)` (a function, or a coroutine function) on the client's loop and
            return its result; from another thread only (on the loop's thread it would wait for
            itself)."""
            if self.on_loop_thread():
                raise RuntimeError("LoopClient.run called on the loop's own thread")
            loop = self.loop
            if loop is None or loop.is_closed():
                raise RuntimeError("the MQTT client's event loop is not running")

            async def call():
                result = fn(*args)
                return await result if asyncio.iscoroutine(result) else result

            future = asyncio.run_coroutine_threadsafe(call(), loop)
            try:
                return future.result(timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError(
                    f"the MQTT client's event loop did not answer within {timeout} s"
                ) from None

        # -- the driver (on the loop's thread) -----------------------------------------------

        def _attach(self) -> None:
            self._loop_thread_id = threading.get_ident()
            self._closed = asyncio.Event()
            self._tasks = [asyncio.ensure_future(self._keep_connected()), asyncio.ensure_future(self._misc())]

        def _detach(self) -> None:
            for task in self._tasks:
                task.cancel()
            self._tasks = []
            sock = self.socket()
            if sock is not None:
                self._unwatch(sock)

        async def _keep_connected(self) -> None:
            """Connect, wait for the socket to close, wait the backoff, connect again."""
            first = True
            while self._stay_connected:
                if not first:
                    await asyncio.sleep(self._backoff())
                first = False
                self._closed.clear()
                self._connecting = True
                try:
                    await asyncio.to_thread(self.reconnect)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._connecting = False
                    if self.on_connect_fail is not None:
                        self.on_connect_fail(
                            self, self.user_data_get()
                        )  # the reason is the exception handled here
                    continue
                self._connecting = False
                if self.socket() is None:  # closed while the attempt finished (written and refused at once)
                    continue
                await self._closed.wait()

        def _backoff(self) -> float:
            low, high = self._delays
            self._next_wait = low if self._next_wait is None else min(self._next_wait * 2, high)
            return self._next_wait

        async def _misc(self) -> None:
            while True:
                await asyncio.sleep(MISC_EVERY_S)
                if not self._connecting and self.socket() is not None:
                    self.loop_misc()

        def _readable(self) -> None:
            self.loop_read()
            sock = self.socket()
            # TLS: bytes already decrypted wait in the SSL object, where the selector cannot see them.
            while sock is not None and getattr(sock, "pending", None) is not None and sock.pending():
                self.loop_read()
                sock = self.socket()
            if self.is_connected():  # a connection accepted (CONNACK) resets the backoff, as paho's loop does
                self._next_wait = None

        def _writable(self) -> None:
            self.loop_write()

        # -- paho's socket callbacks (on the loop's thread, or the executor's during `reconnect`) --

        def _on_loop(self, fn, sock) -> None:
            if self.loop is None or self.loop.is_closed():
                return  # stopped (or paho closing its socket when it is garbage-collected)
            if self.on_loop_thread():
                fn(sock)
            else:
                self.call_soon(fn, sock)

        def _socket_opened(self, client, userdata, sock) -> None:
            self._on_loop(self._watch, sock)

        def _socket_closed(self, client, userdata, sock) -> None:
            self._on_loop(self._unwatch, sock)

        def _want_write(self, client, userdata, sock) -> None:
            self._on_loop(self._watch_write, sock)

        def _written(self, client, userdata, sock) -> None:
            self._on_loop(self._unwatch_write, sock)

        def _watch(self, sock) -> None:
            if self.socket() is sock and self._tasks:
                self.loop.add_reader(sock, self._readable)

        def _watch_write(self, sock) -> None:
            if self.socket() is sock and self._tasks:
                self.loop.add_writer(sock, self._writable)

        def _unwatch_write(self, sock) -> None:
            if sock.fileno() != -1:
                self.loop.remove_writer(sock)

        def _unwatch(self, sock) -> None:
            if sock.fileno() != -1:
                self.loop.remove_reader(sock)
                self.loop.remove_writer(sock)
            self._closed.set()

    return LoopClient


def loop_client(*args, **kw):
    """A paho `Client(*args, **kw)` driven from an asyncio event loop (see the module docstring)."""
    return _client_class()(*args, **kw)
