"""The settings of a `[providers.NAME]` table of type `gcp`."""

from __future__ import annotations

from datetime import timedelta

from attrs import field, frozen

from navarch.plugins import validators

COMPUTE_URL = "https://compute.googleapis.com/compute/v1"
METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"


@frozen(kw_only=True)
class GcpSettings:
    # The project whose machines the provider makes; `check()` reports it when empty.
    project: str
    # A service-account JSON key or an Application Default Credentials file; empty means the
    # ADC order: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server.
    credentials_file: str = ""
    compute_url: str = field(default=COMPUTE_URL, validator=validators.url)
    metadata_url: str = field(default=METADATA_URL, validator=validators.url)
    # The boot disk's sourceImage: an image or an image family, as a partial or full URL.
    image: str = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
    disk_size_gb: int = field(default=200, validator=validators.at_least(10))
    network: str = "global/networks/default"
    # A partial URL (`regions/us-central1/subnetworks/gpu`); it replaces `network` when set.
    subnetwork: str = ""
    # An external IP address per machine, so that its daemon reaches the control plane without
    # Cloud NAT.
    external_ip: bool = True
    # The machine's own service account; none when empty.
    service_account_email: str = ""
    # USD per hour by machine type, over the built-in on-demand prices.
    prices: dict[str, float] = field(factory=dict)
    # How long a Compute Engine operation (insert, delete) may take before the call gives up.
    operation_timeout: timedelta = field(
        default=timedelta(minutes=10), validator=validators.positive
    )
    request_timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
