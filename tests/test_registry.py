"""Plug-ins are found by folder and file name; helper modules beside them are not plug-ins."""

import pytest

from personalign import registry
from personalign.errors import ConfigError


@pytest.mark.parametrize("kind, helper", [("retrievers", "ranking"), ("retrievers", "base"), ("methods", "base"),
                                          ("backends", "base")])
def test_helper_modules_are_neither_listed_nor_loadable(kind: str, helper: str) -> None:
    assert helper not in registry.available(kind)
    with pytest.raises(ConfigError, match=f"unknown {kind[:-1]} '{helper}'"):
        registry.load(kind, helper)


def test_every_listed_plugin_loads_and_names_its_file() -> None:
    for kind in registry.KINDS:
        names = registry.available(kind)
        assert names, kind
        for name in names:
            assert registry.load(kind, name) is not None
    assert {"bm25", "dense", "random", "recency"} <= set(registry.available("retrievers"))
