"""The example configuration that `stresswatch config example` prints: every section, with its defaults."""

EXAMPLE = """\
# stresswatch configuration. Every key is optional; shown values are the defaults.
# Environment overrides: STRESSWATCH_<SECTION>__<KEY>, e.g. STRESSWATCH_PROCESSING__STEP_S=5

# [service]
# timezone = "Europe/Berlin"      # quiet hours, days, day/night baseline; unset = the machine's zone

[processing]
window_s = 300            # SDNN, SD1/SD2, Baevsky SI, PNS/SNS, LF/HF window (s)
rmssd_window_s = 60       # RMSSD, lnRMSSD, HR and pNNxx window (s)
step_s = 10               # one reading every step_s seconds
artifact_correction = true
# rr_gate = true          # without motion, a raised HR alone is "too active to judge"; false in a seated study

[[people]]
name = "me"               # used in MQTT topics and InfluxDB tags
age = 40                  # for HRmax = 208 - 0.7 age (Tanaka 2001), unless max_hr_bpm is set
# max_hr_bpm = 180
# resting_hr_bpm = 60     # otherwise learned from rest

[state]
directory = "~/.local/share/stresswatch"

# [bluetooth]
# adapter = "hci0"                # unset = BlueZ's default adapter
# watchdog_s = 5                  # no data this long = reconnect
# battery_every_s = 300

# [[devices]]                     # one table per strap, one strap per person; `stresswatch scan` lists them
# person = "me"
# address = "A0:9E:1A:12:34:56"   # and/or a name pattern:
# name = "Polar H10*"
# role = "strap"                  # or "motion": a foot pod (Stryd, Polar Stride), motion only, any number

# [morning]                       # the morning reading (README "Morning reading")
# stabilise_s = 60                # discarded first
# measure_s = 60                  # the measured window
# (per person, in [[people]]: morning_posture = "seated" or "lying"; morning_auto = true starts a
#  reading when the strap is put on between morning_from = "05:00" and morning_until = "11:00")

# [mqtt]                          # off unless url is set
# url = "mqtt://127.0.0.1:1883"   # mqtts://host:8883 for TLS
# username = "stresswatch"
# password_file = "/etc/stresswatch/mqtt-password"
# base_topic = "stresswatch"
# ca_file = "/etc/ssl/certs/ca-certificates.crt"
# certfile = ""                   # client certificate, optional (with keyfile)
# verify_hostname = true
# session_expiry_s = 3600
# discovery = true                # Home Assistant MQTT discovery
# discovery_prefix = "homeassistant"
# outbox_max_messages = 100000    # undelivered messages kept while the broker is away (min 100)

# [alerts]                       # when breathing prompts are sent; the defaults (README "Alerts")
# cooldown_min = 90               # between two prompts
# daily_cap = 3                   # prompts a day at most
# quiet_hours = ["22:00", "07:30"]
# sleep_window = ["23:00", "07:00"]
# acute_n_min = 10                # stressed for >= 10 of the last 15 minutes at rest
# acute_m_min = 15
# session_time = "18:30"          # the daily session when a chronic pattern is found
# acute_exercises = ["cyclic sighing", "resonance breathing", "box breathing"]
# hrv_source = "auto"             # chronic lnRMSSD from morning readings once there are any, else the night; or "night" / "morning"

# [influx]                        # off unless url is set
# url = "http://127.0.0.1:8086"
# api = "v2"                      # InfluxDB 2.x/3.x, or 1.8+ with token = "user:password"; "v1" for 1.x < 1.8
# org = "home"
# bucket = "stresswatch"          # v1: the database name
# token_file = "/etc/stresswatch/influx-token"
# batch_size = 5000
# flush_interval_s = 5

# [kafka]                         # more than one machine (`stresswatch collect` / `worker`); off unless set
# bootstrap_servers = "kafka1:9092,kafka2:9092,kafka3:9092"
# security_protocol = "plaintext" # ssl, sasl_plaintext, sasl_ssl
# ca_file = "/etc/stresswatch/kafka-ca.pem"
# sasl_mechanism = "SCRAM-SHA-512"
# username = "stresswatch"
# password_file = "/etc/stresswatch/kafka-password"
# partitions = 48                 # of every topic; people are spread over them by name, so fixed for good
# replication = 3
# batch_s = 3                     # a collector sends each person's beats this often (2-5 s)
"""
