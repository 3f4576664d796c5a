"""Fixture for tests on ``xdplab.net.router_topology.RouterTopology`` (import it into a test module).

Prefixes follow conftest's scheme (``xt<pid%100>...``), so its end-of-session leftover
check covers router namespaces too."""
from __future__ import annotations

import itertools
import os

import pytest

from xdplab.net.router_topology import RouterTopology

_ids = itertools.count(1)


def _factory():
    made = []

    def make(hosts=("h1", "h2", "h3")):
        n = next(_ids)
        t = RouterTopology(hosts=hosts, prefix=f"xt{os.getpid() % 100:02d}r{n}-", net=30 + n % 60)
        made.append(t)
        return t.up()
    return make, made


def _teardown(made):
    for t in made:                  # down() detaches this process's programs in t first
        t.down()


@pytest.fixture
def router_factory():
    """Make RouterTopologies with unique prefixes (``xt<N>r<M>-``); all removed after."""
    make, made = _factory()
    yield make
    _teardown(made)


@pytest.fixture(scope="module")
def router_factory_module():
    """The same, shared by a test module (tests must leave the topology as they found it)."""
    make, made = _factory()
    yield make
    _teardown(made)
