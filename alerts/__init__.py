"""Stress pattern rules, prompt policy and the MQTT / InfluxDB adapters (see the open issues)."""
