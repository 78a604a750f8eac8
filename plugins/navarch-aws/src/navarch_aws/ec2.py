"""EC2 through boto3: one client per region, made on first use, called in worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from navarch_aws.errors import classify
from navarch_aws.settings import AwsSettings

T = TypeVar("T")

# The instance metadata service answers within milliseconds on EC2; elsewhere nothing answers,
# and the credential chain should give up at once instead of after botocore's default.
_METADATA_TIMEOUT_S = 1
_METADATA_ATTEMPTS = 1


class Ec2:
    """EC2's API for one provider. boto3 is imported on first use, so that loading the plugin
    keeps every navarch command fast."""

    def __init__(self, settings: AwsSettings) -> None:
        self._settings = settings
        # boto3 sessions are not thread-safe; the lock guards the session and the clients made
        # from it (clients themselves are).
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def session(self) -> Any:
        """The boto3 session, with the profile and a short metadata-service timeout."""
        with self._lock:
            if self._session is None:
                import boto3  # type: ignore[import-untyped, unused-ignore]
                import botocore.session  # type: ignore[import-untyped, unused-ignore]

                core = botocore.session.Session(profile=self._settings.profile or None)
                core.set_config_variable("metadata_service_timeout", _METADATA_TIMEOUT_S)
                core.set_config_variable("metadata_service_num_attempts", _METADATA_ATTEMPTS)
                self._session = boto3.session.Session(botocore_session=core)
            return self._session

    def _client(self, region: str) -> Any:
        session = self.session()
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]

                timeout = self._settings.request_timeout.total_seconds()
                client = session.client(
                    "ec2",
                    region_name=region,
                    endpoint_url=self._settings.endpoint_url or None,
                    config=Config(
                        connect_timeout=timeout,
                        read_timeout=timeout,
                        # One try: navarch retries a TransientError itself, with backoff, and
                        # must see throttling to slow down.
                        retries={"mode": "standard", "total_max_attempts": 1},
                    ),
                )
                self._clients[region] = client
            return client

    async def call(self, region: str, what: str, operation: Callable[[Any], T]) -> T:
        """`operation(client)` with the region's client, in a worker thread; boto3's errors come
        out as navarch's kinds of `ProviderError`, naming `what` and the region."""
        import trio  # here, so that loading the plugin keeps navarch fast

        def run() -> T:
            try:
                return operation(self._client(region))
            except Exception as exc:
                raise classify(exc, f"{what} in {region}") from exc

        return await trio.to_thread.run_sync(run)

    def session_region(self) -> str | None:
        """The session's region (AWS_REGION, AWS_DEFAULT_REGION or the profile's), or empty;
        None when the profile is missing from the shared files."""
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped, unused-ignore]

        try:
            return str(self.session().region_name or "")
        except BotoCoreError:
            return None

    async def default_region(self) -> str:
        import trio  # here, so that loading the plugin keeps navarch fast

        return await trio.to_thread.run_sync(self.session_region) or ""

    def credential_problems(self) -> list[str]:
        """What keeps the credential chain from giving credentials, as check() lines. Probes the
        instance metadata service, briefly, when nothing else has credentials."""
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped, unused-ignore]

        try:
            credentials = self.session().get_credentials()
        except BotoCoreError as exc:  # a profile missing from the shared files, say
            return [f"AWS credentials: {exc}"]
        if credentials is None:
            return [
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE or profile, or run with an instance role"
            ]
        return []
