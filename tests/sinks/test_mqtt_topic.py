"""The one check of MQTT topic text (MQTT v5 section 4.7): whole topics as published, configured
text spanning levels (base topic, discovery prefix) and names inside one level."""

from __future__ import annotations

import pytest

from sinks.mqtt_topic import topic_faults, topic_problem


@pytest.mark.parametrize("topic", ["stresswatch/ann/state", "a//b", "$x/y", "Ann Lee/state", "ü/é"])
def test_topics_that_can_be_published(topic):
    assert topic_faults(topic) == [] and topic_problem(topic) is None


@pytest.mark.parametrize(
    "topic, words",
    [
        ("stresswatch/a+b/state", "'+' (an MQTT wildcard)"),
        ("stresswatch/c#/state", "'#' (an MQTT wildcard)"),
        ("nul\x00/state", "a NUL character"),
        ("", "nothing (an empty topic)"),
        ("x" * 65536, "65536 bytes (at most 65535)"),
        ("bad\ud800", "text that is not valid UTF-8"),
    ],
)
def test_topics_that_can_never_be_published_say_why(topic, words):
    assert topic_faults(topic) == [words]
    assert topic_problem(topic) == f"topic {topic!r} cannot be published: it contains {words}"


def test_every_fault_is_named_at_once():
    assert topic_faults("a+#") == ["'+' (an MQTT wildcard)", "'#' (an MQTT wildcard)"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("home//stress", "an empty topic level (a leading, trailing or double '/')"),
        ("/stress", "an empty topic level (a leading, trailing or double '/')"),
        ("ha/", "an empty topic level (a leading, trailing or double '/')"),
        ("$SYS/stress", "a leading '$' (reserved for the broker's own topics)"),
        ("home/#", "'#' (an MQTT wildcard)"),
    ],
)
def test_configured_levels_refuse_what_mqtt_allows_but_is_a_typo_or_reserved(text, words):
    assert topic_faults(text, "levels") == [words]
    assert topic_faults("home/stress", "levels") == []


def test_a_name_inside_one_level_has_no_slash():
    assert topic_faults("bo/b", "level") == ["'/' (it would add a topic level)"]
    assert topic_faults("Ann Lee", "level") == []
    with pytest.raises(ValueError, match="part must be topic, levels or level"):
        topic_faults("x", "prefix")
