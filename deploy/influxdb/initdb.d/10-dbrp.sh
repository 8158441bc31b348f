#!/bin/bash
# Runs once, after the image's first-start setup (DOCKER_INFLUXDB_INIT_MODE=setup): maps the
# InfluxQL database/retention policy "<bucket>/autogen" to the bucket, so the Grafana dashboards
# (InfluxQL) and InfluxDB 1.x clients find the data under the bucket's name.
set -euo pipefail
influx v1 dbrp create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
    --rp autogen \
    --default
