"""A `regionlink dashboard` process, and an application that traces what it sends and reads.

`Dashboard` runs the real command on a free loopback port and waits until it answers.
`TracedApp` is an application instrumented as OpenTelemetry's messaging conventions say:
its producer span's context travels in the record's `traceparent` header, and the consumer
that reads the record in the other region continues that trace. Its spans go where the
topology's processes write theirs, the span store in the state directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Tracer, format_trace_id

from broker.ports import free_port
from broker.spanstore import SPANS_FILE, SqliteSpanExporter

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class Dashboard:
    """`regionlink dashboard` on 127.0.0.1 (a free port), until `stop`."""

    def __init__(self, state_dir: Path, *args: str, listen_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir.parent / f"dashboard-{self.port}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mirror.cli", "dashboard", "--state-dir", str(state_dir),
                 "--listen", f"{listen_host}:{self.port}", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )  # fmt: skip
        assert self.process.stdout is not None
        self.banner = [self.process.stdout.readline()]
        if "token (shown once)" in self.banner[0]:
            self.banner.append(self.process.stdout.readline())
        self._wait_answering()

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the dashboard exited: {self.log.read_text()}"
            try:
                urllib.request.urlopen(f"{self.url}/static/dashboard.css", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 without its token)
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the dashboard did not answer in {START_TIMEOUT_S:g}s")

    def stop(self) -> int:
        """SIGTERM, as an operator's Ctrl-C would; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the dashboard did not stop within 10 s of SIGTERM") from None


@dataclass(frozen=True)
class Delivered:
    trace_id: str
    key: str
    partition: int
    offset: int


class TracedApp:
    """One service of an application, in one region, writing its spans to the span store."""

    def __init__(self, state_dir: Path, service: str, region: str) -> None:
        resource = Resource.create({"service.name": service, "regionlink.region": region})
        self.provider = TracerProvider(resource=resource)
        exporter = SqliteSpanExporter(state_dir / SPANS_FILE, service)
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("regionlink.tests")

    def close(self) -> None:
        self.provider.shutdown()

    def send(self, bootstrap: str, topic: str, key: str, value: bytes) -> Delivered:
        """Produce one record inside a PRODUCER span whose context the record carries."""
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
        }
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        delivered: list[tuple[int, int]] = []

        def acked(err: KafkaError | None, msg: Message) -> None:
            partition, offset = msg.partition(), msg.offset()
            if err is None and partition is not None and offset is not None:
                delivered.append((partition, offset))

        with self.tracer.start_as_current_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            producer.produce(
                topic,
                value,
                key.encode(),
                headers=list(headers.items()),
                on_delivery=acked,
            )
            assert producer.flush(20) == 0 and delivered, "the traced record was not acked"
            partition, offset = delivered[0]
            span.set_attribute("messaging.destination.partition.id", str(partition))
            span.set_attribute("messaging.kafka.offset", offset)
            trace_id = format_trace_id(span.get_span_context().trace_id)
        return Delivered(trace_id, key, partition, offset)

    def receive(self, bootstrap: str, topic: str, sent: Delivered, timeout_s: float) -> None:
        """Read the record at its offset (waiting for the mirror to bring it) and process it
        in a CONSUMER span that continues the producer's trace."""
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"traced-{os.getpid()}",
             "enable.auto.commit": False}
        )  # fmt: skip
        try:
            consumer.assign([TopicPartition(topic, sent.partition, sent.offset)])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                assert message.key() == sent.key.encode(), message.key()
                carrier = {
                    name: value.decode() if isinstance(value, bytes) else str(value)
                    for name, value in list(message.headers() or [])
                    if value is not None
                }
                with self.tracer.start_as_current_span(
                    f"process {topic}",
                    context=propagate.extract(carrier),
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": topic,
                        "messaging.kafka.message.key": sent.key,
                        "messaging.kafka.offset": sent.offset,
                    },
                ):
                    time.sleep(0.005)  # the application's work on the record
                return
        finally:
            consumer.close()
        raise AssertionError(f"{sent} never reached {bootstrap} within {timeout_s:g}s")
