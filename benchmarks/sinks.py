"""Benchmark of the sinks on loopback; prints figures, asserts nothing.

1. End-to-end latency from a `Reading` handed to the MQTT sink to the state message arriving at
   a subscribed client (real Mosquitto, same process, so one clock): median and p99.
2. QoS 1 prompts through the sink (SQLite outbox, PUBACK bookkeeping, expiry, status) until
   every one is `delivered`, against bare paho publishing the same payloads at QoS 1 and
   waiting for every PUBACK (the reference, same broker, same process): prompts/s and ratio.
3. Write throughput into VictoriaMetrics through the outbox and influxdb-client (batches of
   5000 beat points): points/s, enqueue and delivery separately.

Needs the Debian packages mosquitto and victoria-metrics (scripts/test installs them).
Usage: .venv/bin/python benchmarks/sinks.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

import paho.mqtt.client as mqtt
import servers
from paho.mqtt.enums import CallbackAPIVersion

from alerts.prompt import Prompt
from benchmarks.options import parser
from collector.events import Beat
from processing.reading import Reading
from sinks.influx import InfluxSink, beat_line
from sinks.mqtt import MqttSettings, MqttSink
from sinks.store import StateStore


def mqtt_latency(tmp: Path, n: int = 2000) -> tuple[float, float, float]:
    broker = servers.mosquitto(tmp).start()
    try:
        sent: dict[float, float] = {}
        lat: list[float] = []
        done = threading.Event()

        def on_message(client, userdata, msg):
            t = json.loads(msg.payload)["time"]
            if t in sent:
                lat.append(time.perf_counter() - sent[t])
                if len(lat) >= n:
                    done.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("stresswatch/+/state", qos=0)
        sub.loop_start()
        sink = MqttSink(StateStore(tmp / "state.db"), MqttSettings(port=broker.port, discovery=False), ["me"])
        sink.start()
        sink.connected.wait(10)
        time.sleep(0.5)
        base = Reading(
            "me",
            0.0,
            300.0,
            300,
            900.0,
            66.7,
            42.0,
            3.7,
            50.0,
            20.0,
            45.0,
            29.7,
            60.0,
            90.0,
            9.5,
            0.1,
            -0.2,
            1.1,
            0.0,
            "rest",
            40.0,
            "neutral",
            1.0,
        )
        for i in range(n):
            r = replace(base, time=1_800_000_000.0 + i)
            sent[r.time] = time.perf_counter()
            sink.publish_state(r)
            time.sleep(0.002)  # ~ a reading every 2 ms: far above the real rate, no queueing
        done.wait(30)
        sink.stop()
        sub.loop_stop()
        lat.sort()
        return statistics.median(lat) * 1e3, lat[int(0.99 * (len(lat) - 1))] * 1e3, len(lat) / n
    finally:
        broker.stop()


def mqtt_prompt_throughput(tmp: Path, n: int = 2000) -> tuple[float, float]:
    """(sink prompts/s, bare paho QoS 1 messages/s), each until the broker acknowledged all."""
    broker = servers.mosquitto(tmp).start()
    try:
        now = time.time()
        prompts = [Prompt(f"p{i}", "me", now, "acute", "benchmark", 80.0, now + 3600) for i in range(n)]
        payloads = [json.dumps(p.to_dict()) for p in prompts]

        bare = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        bare.connect("127.0.0.1", broker.port)
        bare.loop_start()
        start = time.perf_counter()
        infos = [bare.publish("stresswatch/me/prompt", body, qos=1) for body in payloads]
        for info in infos:
            info.wait_for_publish(30)
        reference = n / (time.perf_counter() - start)
        bare.disconnect()
        bare.loop_stop()

        store = StateStore(tmp / "prompts.db")
        sink = MqttSink(store, MqttSettings(port=broker.port, discovery=False), ["me"])
        sink.start()
        sink.connected.wait(10)
        start = time.perf_counter()
        for p in prompts:
            sink.publish_prompt(p)
        servers.wait_for(lambda: store.pending("mqtt") == 0, 60)
        ours = n / (time.perf_counter() - start)
        assert store.prompt(prompts[-1].id)["status"] == "delivered"
        sink.stop()
        return ours, reference
    finally:
        broker.stop()


def vm_throughput(tmp: Path, n: int = 200_000) -> tuple[float, float]:
    vm = servers.victoria_metrics(tmp).start()
    try:
        store = StateStore(tmp / "influx.db", max_rows=10 * n)
        sink = InfluxSink(store, vm.url, bucket="b", batch_size=5000)
        t0 = time.time() - n
        lines = [beat_line(Beat("me", "h10", t0 + i * 0.8, 800.0 + i % 50)) for i in range(n)]
        start = time.perf_counter()
        for k in range(0, n, 1000):
            sink.add(lines[k : k + 1000])
        enqueue = time.perf_counter() - start
        start = time.perf_counter()
        delivered = 0
        while store.pending("influx"):
            delivered += sink.flush(force=True)
        deliver = time.perf_counter() - start
        assert delivered == n
        return n / enqueue, n / deliver
    finally:
        vm.stop()


def main() -> None:
    parser(__doc__).parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        p50, p99, received = mqtt_latency(Path(a))
        ours, bare = mqtt_prompt_throughput(Path(a))
        enq, dlv = vm_throughput(Path(b))
    print("stresswatch sinks benchmark (loopback, this machine)")
    print(
        f"  Reading -> MQTT state message at a subscriber: median {p50:.2f} ms, p99 {p99:.2f} ms "
        f"(goal p99 <= 20 ms; {100 * received:.0f} % received)"
    )
    print(
        f"  QoS 1 prompts until acknowledged: sink {ours:,.0f} /s, bare paho {bare:,.0f} /s "
        f"(sink/bare {ours / bare:.2f})"
    )
    print(f"  InfluxDB points into the outbox (SQLite, batches of 1000): {enq:,.0f} points/s")
    print(f"  outbox -> VictoriaMetrics via influxdb-client, batches of 5000: {dlv:,.0f} points/s")


if __name__ == "__main__":
    main()
