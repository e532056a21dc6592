"""A TCP proxy in front of a server, which a test can "stop" (refuse and cut every connection) and "start"
again on the same port while the server behind it keeps its data — a broker that goes down and comes back
with its logs and consumer offsets, as a real Kafka cluster does (Tansu keeps its storage in memory, so
restarting the process itself brings back an empty broker)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support.infra import free_port, wait_port


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    def start(self) -> None:
        self._call(self._start())
        wait_port(self.host, self.port)

    def stop(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class DurableBroker:
    """A broker this test may take down and bring back with everything it held (logs, consumer offsets).

    Apache Kafka (the default) is stopped and started for real on its log directory; ``kill()`` is a SIGKILL.
    Tansu keeps its log in memory, so it stays up behind a :class:`TcpProxy` that ``stop()`` takes off the network
    (connections refused, open ones cut), which is how an outage looks to clients."""

    def __init__(self) -> None:
        from minsheng.localinfra.kafka import Tansu, local_broker

        self.broker = local_broker()
        self.proxy: TcpProxy | None = None
        if isinstance(self.broker, Tansu):
            self.proxy = TcpProxy(target_port=free_port())
            self.broker = Tansu(port=self.proxy.target_port, advertised=f"127.0.0.1:{self.proxy.port}")

    @property
    def name(self) -> str:
        return self.broker.name

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap  # Tansu behind the proxy advertises the proxy's address

    def open(self) -> None:
        self.broker.start()
        if self.proxy is not None:
            self.proxy.start()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        else:
            self.broker.stop()

    def kill(self) -> None:
        """A crash: SIGKILL on Apache Kafka; on Tansu the same as ``stop()`` (its data must survive)."""
        if self.proxy is not None:
            self.proxy.stop()
        else:
            self.broker.kill()

    def start(self) -> None:
        if self.proxy is not None:
            self.proxy.start()
        else:
            self.broker.start()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        self.broker.cleanup()
