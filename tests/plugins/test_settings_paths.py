"""A validator that names a key or index under its attribute gets the full path in its message."""

from __future__ import annotations

import pytest
from attrs import field, frozen

from navarch.plugins import ConfigValueError
from navarch.plugins.settings import structure


def _check(_inst, attribute, value):
    for key, item in value.items():
        if not item.startswith("ami-"):
            raise ConfigValueError(f'{attribute.name}.{key}: expected an AMI id, got "{item}"')


def _index(_inst, attribute, value):
    for i, item in enumerate(value):
        if item < 0:
            raise ConfigValueError(f"{attribute.name}[{i}]: expected 0 or more, got {item}")


def _words(_inst, attribute, value):
    if value == "bad":
        raise ConfigValueError("the value here is bad: choose another")


@frozen(kw_only=True)
class Settings:
    images: dict[str, str] = field(factory=dict, validator=_check)
    sizes: list[int] = field(factory=list, validator=_index)
    word: str = field(default="", validator=_words)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"images": {"us-east-1": "img-1"}},
            'providers.ec2.images.us-east-1: expected an AMI id, got "img-1"',
        ),
        ({"sizes": [1, -2]}, "providers.ec2.sizes[1]: expected 0 or more, got -2"),
        # A message whose head is not an attribute keeps the table's path.
        ({"word": "bad"}, "providers.ec2: the value here is bad: choose another"),
    ],
)
def test_a_key_or_index_the_validator_names_joins_the_path(data, problem):
    problems: list[str] = []
    assert structure(data, Settings, problems, "providers.ec2") is None
    assert problems == [problem]
