"""What may stand in an MQTT topic (MQTT v5 section 4.7): the one check of topic text, for the
topics the MQTT sink publishes and for configured names that become parts of them."""

from __future__ import annotations

MAX_TOPIC_BYTES = 65535  # MQTT v5 1.5.4: a UTF-8 string is at most 65535 bytes

# What a topic name must not contain (4.7.1: wildcards are for subscriptions only; 1.5.4: no NUL).
_FORBIDDEN = {"+": "'+' (an MQTT wildcard)", "#": "'#' (an MQTT wildcard)", "\0": "a NUL character"}


def topic_faults(text: str, part: str = "topic") -> list[str]:
    """What makes `text` unusable in an MQTT topic, each as words that complete "it contains ...";
    [] when it is fine. `part` says what the text is:

    - "topic": a whole topic as published: not empty (4.7.3), no wildcard or NUL, valid UTF-8 of
      at most 65535 bytes;
    - "levels": configured text that may span levels (`mqtt.base_topic`, `mqtt.discovery_prefix`):
      also no empty level (ours: "a//b" is legal MQTT but a typo here) and no leading '$' (4.7.2:
      reserved for the broker's own topics);
    - "level": a name inside one level (a person, a device): also no '/'."""
    if part not in ("topic", "levels", "level"):
        raise ValueError(f"part must be topic, levels or level, got {part!r}")
    faults = [words for c, words in _FORBIDDEN.items() if c in text]
    if part == "level" and "/" in text:
        faults.append("'/' (it would add a topic level)")
    if part == "levels" and "" in text.split("/"):
        faults.append("an empty topic level (a leading, trailing or double '/')")
    if part == "levels" and text.startswith("$"):
        faults.append("a leading '$' (reserved for the broker's own topics)")
    if part == "topic" and not text:
        faults.append("nothing (an empty topic)")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        faults.append("text that is not valid UTF-8")
    else:
        if size > MAX_TOPIC_BYTES:
            faults.append(f"{size} bytes (at most {MAX_TOPIC_BYTES})")
    return faults


def topic_problem(topic: str) -> str | None:
    """Why `topic` can never be published, in one line, or None when it can."""
    faults = topic_faults(topic)
    return f"topic {topic!r} cannot be published: it contains {' and '.join(faults)}" if faults else None
