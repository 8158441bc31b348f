"""A number a person typed: finite_number accepts what float() reads as a finite number and says
which of the two problems any other value has."""

from __future__ import annotations

import pytest

from stresswatch.number import finite_number


@pytest.mark.parametrize(
    "value, expected", [("2.5", 2.5), (" 10 ", 10.0), ("1e3", 1000.0), (7, 7.0), (-0.5, -0.5)]
)
def test_numbers_and_their_text_are_read_as_floats(value, expected):
    assert finite_number(value) == expected and isinstance(finite_number(value), float)


@pytest.mark.parametrize("value", ["often", "", "1,5", None, [1], True, False])
def test_what_is_not_a_number_says_so_with_the_value(value):
    with pytest.raises(ValueError) as err:
        finite_number(value)
    assert str(err.value) == f"must be a number, got {value!r}"


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", float("nan"), float("-inf")])
def test_nan_and_infinities_are_refused_as_not_finite(value):
    with pytest.raises(ValueError) as err:
        finite_number(value)
    assert str(err.value) == f"must be a finite number, got {value!r}"
