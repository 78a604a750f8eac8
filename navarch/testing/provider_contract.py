"""The provider contract as tests: what navarch relies on every provider to do.

A provider package runs these tests against its own provider, built over a fake of its cloud.
To run them:

1. In a test module, subclass `ProviderContract` with a class whose name starts with `Test`.
2. Set `instance_type` to a type that the fake cloud offers, and `region` (and `zone`) when the
   provider needs one in a request.
3. Supply the provider under test as a `provider` fixture. Tests of your own in the class take
   `contract_provider`, the same provider after the suite attached it.
4. Implement the hooks that the fake cloud can act out: `exhaust_capacity`, `exhaust_quota`,
   `refuse_credentials` and `fail_transiently`. Each puts the cloud in a state after which
   `provision` must raise one kind of error. A hook left out skips its test, and says so.

    import pytest
    from navarch.testing import ProviderContract

    from navarch_moon import MoonProvider, MoonSettings
    from fake_moon import FakeMoon


    class TestMoonProvider(ProviderContract):
        instance_type = "gpu-8x"
        region = "moon-1"

        @pytest.fixture
        def provider(self):
            self.cloud = FakeMoon()
            return MoonProvider(MoonSettings(), transport=self.cloud.transport)

        async def exhaust_capacity(self, provider):
            self.cloud.capacity = 0

A `provider` fixture that is a plain function runs on the same object as the tests, so the
hooks reach what it kept on `self`; it may depend on other plain fixtures, such as the fake cloud.
The tests are marked for pytest-trio, so they run whether or not the project sets `trio_mode`.

Each test asks for instances in a pool of its own (`provision_request`), and terminates the
instances it made when it ends. A provider with `attach` is attached, before each test, to a
`MockProviderContext` (the `provider_context` fixture): its tasks run in a nursery that the suite
cancels after the test, a task that raises fails the test, and `boot` refuses. To boot machines,
override `provider_context`. A provider that can reboot its machines (`RebootingProvider`) is
checked to reboot a live one and to refuse an unknown one; the reboot tests of any other are
skipped.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import attrs
import pytest
import trio
from attrs import frozen

from navarch.plugins import (
    POOL_LABEL,
    AttachableProvider,
    AuthError,
    CapacityError,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    Provider,
    ProviderCatalog,
    ProviderError,
    ProvisionRequest,
    QuotaError,
    RebootingProvider,
    TransientError,
)
from navarch.testing.provider_context import MockProviderContext

_ACCEPTED = (InstanceState.RUNNING, InstanceState.PROVISIONING)


@frozen
class _Failure:
    """A state of the cloud that a hook sets up, and the error that provision must raise in it."""

    hook: str
    error: type[ProviderError]
    state: str


_FAILURES = [
    _Failure("exhaust_capacity", CapacityError, "the cloud has no capacity"),
    _Failure("exhaust_quota", QuotaError, "the account's quota is used up"),
    _Failure("refuse_credentials", AuthError, "the cloud refuses the credentials"),
    _Failure("fail_transiently", TransientError, "the cloud fails for a while"),
]


class ProviderContract:
    """The provider contract's tests; subclass it and supply a `provider` fixture."""

    pytestmark: ClassVar = pytest.mark.trio

    # The provider's own name of an instance type that the cloud under test offers.
    instance_type: ClassVar[str]
    region: ClassVar[str] = ""
    zone: ClassVar[str] = ""
    # An instance id that the cloud does not know, in the form the cloud's ids take.
    unknown_instance_id: ClassVar[str] = "navarch-contract-unknown"

    def provision_request(self, **changes: Any) -> ProvisionRequest:
        """A request for one instance of `instance_type`, in a pool of its own, with a request
        id of its own; `changes` replace its fields."""
        if not getattr(self, "instance_type", ""):
            pytest.fail(f"{type(self).__name__} must set instance_type, a type the cloud offers")
        pool = f"contract-{secrets.token_hex(4)}"
        request = ProvisionRequest(
            name=pool,
            instance_type=self.instance_type,
            region=self.region,
            zone=self.zone,
            pool=pool,
            labels={POOL_LABEL: pool, "purpose": "navarch-contract"},
            request_id=str(uuid.uuid4()),
        )
        return attrs.evolve(request, **changes)

    async def exhaust_capacity(self, provider: Any) -> None:
        """Leaves the cloud without capacity for `instance_type`: provision raises
        `CapacityError`, and navarch tries the next region or provider at once."""
        raise NotImplementedError

    async def exhaust_quota(self, provider: Any) -> None:
        """Uses up the account's quota: provision raises `QuotaError`, and navarch blocks the
        region for longer."""
        raise NotImplementedError

    async def refuse_credentials(self, provider: Any) -> None:
        """Makes the cloud refuse the provider's credentials: provision raises `AuthError`, and
        navarch blocks the whole provider."""
        raise NotImplementedError

    async def fail_transiently(self, provider: Any) -> None:
        """Makes the cloud fail for a while (a timeout, a 5xx): provision raises
        `TransientError`, and navarch retries with backoff."""
        raise NotImplementedError

    @pytest.fixture
    async def provider_context(self) -> AsyncIterator[MockProviderContext]:
        """The context that a provider with `attach` is attached to before each test."""
        async with trio.open_nursery() as nursery:
            context = MockProviderContext(nursery, name="contract")
            yield context
            nursery.cancel_scope.cancel()
        assert not context.failures, f"a task the provider started failed: {context.failures}"

    # pytest-trio runs async fixtures on another object of the class, runs only those that a
    # test names as arguments, and drops the reason of a skip that happens inside trio. So the
    # tests name `contract_provider`, and what they share with it and what skips them are plain
    # fixtures.

    @pytest.fixture
    def _provisioned(self) -> list[str]:
        """The instances a test made, to terminate when it ends."""
        self._made: list[str] = []
        return self._made

    @pytest.fixture
    async def contract_provider(
        self,
        provider: Provider,
        provider_context: MockProviderContext,
        _provisioned: list[str],
    ) -> AsyncIterator[Provider]:
        """The `provider` fixture's provider, attached when it has `attach`; the instances a test
        made through it are terminated when the test ends."""
        if isinstance(provider, AttachableProvider):
            provider.attach(provider_context)
        yield provider
        for instance_id in _provisioned:
            try:
                await provider.terminate(instance_id)
            except ProviderError:
                pass  # already gone, or the test left the cloud refusing calls

    @pytest.fixture(params=_FAILURES, ids=lambda failure: failure.hook)
    def cloud_failure(self, request: pytest.FixtureRequest) -> _Failure:
        failure: _Failure = request.param
        if getattr(type(self), failure.hook) is getattr(ProviderContract, failure.hook):
            pytest.skip(
                f"{type(self).__name__} does not implement {failure.hook}(provider), which "
                f"would check that provision raises {failure.error.__name__} when "
                f"{failure.state}"
            )
        return failure

    @pytest.fixture
    def _catalog_required(self, provider: Provider) -> None:
        if not isinstance(provider, ProviderCatalog):
            pytest.skip(
                f"{type(provider).__name__} has no instance_types(); the cost and availability "
                "selectors see no price or capacity for it"
            )

    @pytest.fixture
    def _reboot_required(self, provider: Provider) -> None:
        if not isinstance(provider, RebootingProvider):
            pytest.skip(
                f"{type(provider).__name__} has no reboot(); remediation reboots its machines "
                "through the daemon's reboot command"
            )

    async def _provision(self, provider: Provider, request: ProvisionRequest) -> Instance:
        instance = await provider.provision(request)
        if isinstance(instance, Instance):
            self._made.append(instance.instance_id)
        return instance

    async def _listed(self, provider: Provider, pool: str) -> list[Instance]:
        """The listed instances that carry `pool`'s label."""
        instances = await provider.list()
        assert isinstance(instances, Sequence), f"list() returned {instances!r}, not a sequence"
        return [i for i in instances if i.labels.get(POOL_LABEL) == pool]

    async def test_provision_returns_an_instance_of_the_request(
        self, contract_provider: Provider
    ) -> None:
        request = self.provision_request()
        instance = await self._provision(contract_provider, request)
        assert isinstance(instance, Instance), f"provision returned {instance!r}"
        assert instance.instance_id
        assert instance.state in _ACCEPTED
        assert instance.instance_type == request.instance_type
        assert instance.pool == request.pool
        assert request.labels.items() <= instance.labels.items()
        if request.region:
            assert instance.region == request.region
        if request.zone:
            assert instance.zone == request.zone

    async def test_list_finds_the_instance_by_its_pool_label(
        self, contract_provider: Provider
    ) -> None:
        request = self.provision_request()
        instance = await self._provision(contract_provider, request)
        listed = await self._listed(contract_provider, request.pool)
        assert [i.instance_id for i in listed] == [instance.instance_id]
        # The pool manager adopts a listed instance that it has no record of by its `pool`.
        assert listed[0].pool == request.pool
        assert listed[0].instance_type == request.instance_type
        assert listed[0].state in _ACCEPTED

    async def test_terminate_removes_the_instance_from_list(
        self, contract_provider: Provider
    ) -> None:
        request = self.provision_request()
        instance = await self._provision(contract_provider, request)
        await contract_provider.terminate(instance.instance_id)
        assert await self._listed(contract_provider, request.pool) == []

    async def test_terminating_an_unknown_instance_raises_instance_not_found(
        self, contract_provider: Provider
    ) -> None:
        with pytest.raises(InstanceNotFound):
            await contract_provider.terminate(self.unknown_instance_id)

    async def test_reboot_keeps_the_instance(
        self, contract_provider: Any, _reboot_required: None
    ) -> None:
        request = self.provision_request()
        instance = await self._provision(contract_provider, request)
        await contract_provider.reboot(instance.instance_id)
        listed = await self._listed(contract_provider, request.pool)
        assert [i.instance_id for i in listed] == [instance.instance_id]
        assert listed[0].state in _ACCEPTED

    async def test_rebooting_an_unknown_instance_raises_instance_not_found(
        self, contract_provider: Any, _reboot_required: None
    ) -> None:
        with pytest.raises(InstanceNotFound):
            await contract_provider.reboot(self.unknown_instance_id)

    async def test_a_retried_request_returns_the_first_instance(
        self, contract_provider: Provider
    ) -> None:
        request = self.provision_request()
        first = await self._provision(contract_provider, request)
        again = await self._provision(contract_provider, request)
        assert again.instance_id == first.instance_id
        listed = await self._listed(contract_provider, request.pool)
        assert [i.instance_id for i in listed] == [first.instance_id]

    async def test_each_request_makes_an_instance_of_its_own(
        self, contract_provider: Provider
    ) -> None:
        request = self.provision_request()
        another = attrs.evolve(request, request_id=str(uuid.uuid4()))
        first = await self._provision(contract_provider, request)
        second = await self._provision(contract_provider, another)
        assert second.instance_id != first.instance_id
        listed = await self._listed(contract_provider, request.pool)
        assert sorted(i.instance_id for i in listed) == sorted(
            [first.instance_id, second.instance_id]
        )

    async def test_instance_types_are_well_formed(
        self, contract_provider: Any, _catalog_required: None
    ) -> None:
        types = await contract_provider.instance_types()
        assert types, "instance_types() returned no instance types"
        for entry in types:
            assert isinstance(entry, InstanceType), f"instance_types() returned {entry!r}"
            assert isinstance(entry.name, str) and entry.name
            assert isinstance(entry.gpu_count, int) and entry.gpu_count > 0, entry
            assert isinstance(entry.gpu_type, str)
            price = entry.price_per_hour
            assert price is None or (math.isfinite(price) and price >= 0), entry
            assert all(isinstance(region, str) and region for region in entry.available_regions)
        names = [entry.name for entry in types]
        assert len(set(names)) == len(names), f"instance types listed twice: {names}"
        assert self.instance_type in names

    async def test_provision_raises_the_kind_of_error_the_cloud_gives(
        self, contract_provider: Provider, cloud_failure: _Failure
    ) -> None:
        hook, error = cloud_failure.hook, cloud_failure.error
        await getattr(self, hook)(contract_provider)
        try:
            instance = await self._provision(contract_provider, self.provision_request())
        except Exception as exc:
            assert isinstance(exc, error), (
                f"after {hook}, provision raised {type(exc).__name__}: {exc}; "
                f"expected {error.__name__}"
            )
        else:
            pytest.fail(f"after {hook}, provision returned {instance!r}; expected {error.__name__}")
