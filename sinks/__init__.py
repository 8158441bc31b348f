"""The outputs: MQTT (with Home Assistant discovery), InfluxDB, and the SQLite store behind both."""
