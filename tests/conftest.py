"""Shared fixtures. Integration tests run on the real kernel as root.

Every test topology gets its own name prefix and subnet (``topo_factory``), so tests,
notebooks and a running lab never share an interface; the session ends by checking
that nothing with a test prefix is left behind.
"""
from __future__ import annotations

import itertools
import os

import pytest

import xdplab
from xdplab import topology

_ids = itertools.count(1)
TEST_PREFIX = "xt"


@pytest.fixture
def topo_factory():
    """Make topologies with unique prefixes (``xt<N>-``) and subnets; all torn down after."""
    made = []

    def make(hosts=("h1", "h2"), **kw):
        n = next(_ids) + 40 * (os.getpid() % 4)
        t = topology.Topology(hosts=hosts, prefix=f"{TEST_PREFIX}{os.getpid() % 100}{n}-",
                              net=100 + n % 150, **kw)
        made.append(t)
        return t.up()

    yield make
    xdplab.detach_all()
    for t in made:
        t.down()


@pytest.fixture
def topo(topo_factory):
    """A two-host topology (h1, h2) of this test's own."""
    return topo_factory()


def pytest_sessionfinish(session, exitstatus):
    xdplab.detach_all()
    left = topology.leftovers(f"{TEST_PREFIX}{os.getpid() % 100}")
    if left["netns"] or left["links"]:
        topology.remove_all(f"{TEST_PREFIX}{os.getpid() % 100}")
        print(f"\nLEFTOVERS removed after the run (a teardown bug): {left}")
        session.exitstatus = 1
