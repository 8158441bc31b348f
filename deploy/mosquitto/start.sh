#!/bin/sh
# Writes Mosquitto's password file from the environment (deploy/.env), then runs the broker.
# A user whose password variable is empty or unset gets no login.
set -eu
conf=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
passwd=${MOSQUITTO_PASSWD:-/mosquitto/data/passwd}
umask 077
: > "$passwd"
add_user() {
    # mosquitto_passwd -b puts the password on a command line that lives for milliseconds
    # inside this container; the alternative (an interactive prompt) cannot run unattended.
    if [ -n "$2" ]; then mosquitto_passwd -b "$passwd" "$1" "$2"; fi
}
add_user stresswatch "${MQTT_PASSWORD:-}"
add_user phone "${MQTT_PHONE_PASSWORD:-}"
add_user homeassistant "${MQTT_HOMEASSISTANT_PASSWORD:-}"
if [ ! -s "$passwd" ]; then
    echo "mosquitto/start.sh: no MQTT user has a password; set MQTT_PASSWORD in deploy/.env" >&2
    exit 2
fi
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto:mosquitto "$passwd"; fi
exec mosquitto -c "$conf"
