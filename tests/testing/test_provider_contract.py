"""The provider contract: the built-in fake provider keeps it, and broken providers fail it."""

from __future__ import annotations

import textwrap

import attrs
import pytest
import trio

from navarch.plugins import ProvisionRequest
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.testing import MockProviderContext, ProviderContract

pytest_plugins = ["pytester"]


class TestFakeProvider(ProviderContract):
    instance_type = "fake-8x"
    region = "local"

    @pytest.fixture
    def provider(self):
        return FakeProvider(FakeProviderSettings(prices={"fake-8x": 2.5}, seed=1))

    async def exhaust_capacity(self, provider):
        provider.settings = attrs.evolve(provider.settings, capacity=0)

    async def fail_transiently(self, provider):
        provider.settings = attrs.evolve(provider.settings, failure_rate=1.0)


# A provider that keeps the contract, for the suite's own tests to break one way at a time.
SOUND = """
import itertools

import pytest

from navarch.plugins import (
    CapacityError, Instance, InstanceNotFound, InstanceState, TransientError,
)
from navarch.testing import ProviderContract


class Cloud:
    def __init__(self):
        self.instances = {}
        self.requests = {}
        self.ids = itertools.count(1)
        self.full = False

    async def provision(self, request):
        if request.request_id in self.requests:
            return self.instances[self.requests[request.request_id]]
        if self.full:
            raise CapacityError("full")
        instance = Instance(
            instance_id=f"i-{next(self.ids)}",
            provider="sound",
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
            pool=request.pool,
            labels=dict(request.labels),
        )
        self.instances[instance.instance_id] = instance
        self.requests[request.request_id] = instance.instance_id
        return instance

    async def terminate(self, instance_id):
        if self.instances.pop(instance_id, None) is None:
            raise InstanceNotFound(instance_id)

    async def list(self):
        return list(self.instances.values())


class TestCloud(ProviderContract):
    instance_type = "gpu-1x"

    @pytest.fixture
    def provider(self):
        return Cloud()

    async def exhaust_capacity(self, provider):
        provider.full = True
"""


def run_contract(pytester: pytest.Pytester, changes: str = "") -> pytest.RunResult:
    pytester.makepyfile(test_cloud=SOUND + textwrap.dedent(changes))
    return pytester.runpytest_inprocess("-rfs", "-p", "no:cacheprovider")


def test_a_sound_provider_passes_and_hooks_left_out_skip_with_their_reason(pytester):
    result = run_contract(pytester)
    result.assert_outcomes(passed=7, skipped=6)
    result.stdout.fnmatch_lines(
        [
            "*Cloud has no instance_types(); the cost and availability selectors see no price*",
            "*TestCloud does not implement exhaust_quota(provider), which would check that "
            "provision raises QuotaError when the account's quota is used up",
        ]
    )


def test_a_provider_that_ignores_the_request_id_fails(pytester):
    result = run_contract(
        pytester,
        """
        class Forgetful(Cloud):
            async def provision(self, request):
                self.requests.clear()
                return await super().provision(request)


        class TestCloud(TestCloud):
            @pytest.fixture
            def provider(self):
                return Forgetful()
        """,
    )
    result.assert_outcomes(passed=6, failed=1, skipped=6)
    result.stdout.fnmatch_lines(
        ["*assert 'i-2' == 'i-1'*", "FAILED *test_a_retried_request_returns_the_first_instance*"]
    )


def test_the_wrong_kind_of_error_fails_and_names_both_kinds(pytester):
    result = run_contract(
        pytester,
        """
        class TestCloud(TestCloud):
            async def exhaust_capacity(self, provider):
                async def refuse(request):
                    raise TransientError("try again")
                provider.provision = refuse
        """,
    )
    result.assert_outcomes(passed=6, failed=1, skipped=6)
    result.stdout.fnmatch_lines(
        [
            "*after exhaust_capacity, provision raised TransientError: try again; "
            "expected CapacityError*"
        ]
    )


def test_a_failed_task_of_an_attached_provider_fails_the_test(pytester):
    result = run_contract(
        pytester,
        """
        class TestCloud(TestCloud):
            @pytest.fixture
            def provider(self):
                cloud = Cloud()

                async def crash():
                    raise RuntimeError("lost the cloud's event stream")

                cloud.attach = lambda context: context.start_soon(crash)
                return cloud
        """,
    )
    result.stdout.fnmatch_lines(["*a task the provider started failed*lost the cloud*"])
    assert result.ret != 0


async def test_an_attached_fake_provider_boots_its_machines_through_the_context():
    booted = []

    class Machine:
        def set_load(self, utilization):
            pass

        def power_off(self):
            booted.remove(self)

    def boot(instance, machine):
        booted.append(Machine())
        return booted[-1]

    provider = FakeProvider(FakeProviderSettings(gpu_count=2))
    async with trio.open_nursery() as nursery:
        provider.attach(MockProviderContext(nursery, name="local", machines=boot))
        request = ProvisionRequest(name="dev", instance_type="fake-8x", pool="dev")
        instance = await provider.provision(request)
        assert instance.provider == "local"
        assert len(booted) == 1
        await provider.terminate(instance.instance_id)
        assert booted == []
