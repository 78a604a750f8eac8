"""Compute Engine instance resources: the body an insert sends, and the `Instance` one becomes.

GCP names and label keys are lowercase `[a-z0-9_-]`, so navarch's labels (`navarch.io/pool`)
cannot be label keys as they are. Each machine carries them twice: sanitized as GCP labels, which
`list()` filters on, and verbatim as JSON in a metadata item, which `list()` returns.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from navarch.plugins import POOL_LABEL, Instance, InstanceState, ProvisionRequest
from navarch_gcp.catalog import region_of
from navarch_gcp.compute import last_segment, need
from navarch_gcp.settings import GcpSettings

MANAGED_LABEL = "navarch-managed"
POOL_KEY = "navarch-pool"
LABELS_ITEM = "navarch-labels"
MANAGED_FILTER = f'labels.{MANAGED_LABEL} = "true"'

# Instance statuses. A machine that the cloud stopped (a spot machine taken back, a maintenance
# event that GPU machines cannot live-migrate through) stays listed until navarch deletes it.
STATES = {
    "PROVISIONING": InstanceState.PROVISIONING,
    "STAGING": InstanceState.PROVISIONING,
    "RUNNING": InstanceState.RUNNING,
    "REPAIRING": InstanceState.RUNNING,
    "STOPPING": InstanceState.PREEMPTED,
    "SUSPENDING": InstanceState.PREEMPTED,
    "SUSPENDED": InstanceState.PREEMPTED,
    "TERMINATED": InstanceState.PREEMPTED,
}

_INVALID = re.compile(r"[^a-z0-9_-]+")


def instance_name(pool: str, request_id: str) -> str:
    """A GCP name (`[a-z]([-a-z0-9]{0,61}[a-z0-9])?`) for the request: the pool's name and a
    hash of the request id, so that a retried request names the same machine."""
    digest = hashlib.sha256((request_id or secrets.token_hex(16)).encode()).hexdigest()[:10]
    stem = re.sub(r"-+", "-", _INVALID.sub("-", pool.lower()).replace("_", "-")).strip("-")
    if not stem[:1].isalpha():
        stem = f"navarch-{stem}".rstrip("-")
    return f"{stem[:52].rstrip('-')}-{digest}"


def request_uuid(request_id: str) -> str:
    """Compute Engine takes a UUID as requestId; another id maps to one UUID of its own."""
    if not request_id:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"navarch:{request_id}"))


def gcp_labels(labels: dict[str, str], pool: str) -> dict[str, str]:
    """navarch's labels as GCP labels, with the pool and the mark that `list()` filters on."""
    out = {_label(key): _label(value, key=False) for key, value in labels.items()}
    out.pop(_label(POOL_LABEL), None)
    out[POOL_KEY] = _label(labels.get(POOL_LABEL, pool), key=False)
    out[MANAGED_LABEL] = "true"
    return out


def _label(text: str, *, key: bool = True) -> str:
    cleaned = _INVALID.sub("-", text.lower()).strip("-")[:63]
    if key and not cleaned[:1].isalpha():
        cleaned = f"l-{cleaned}"[:63]
    return cleaned


def insert_body(
    settings: GcpSettings, request: ProvisionRequest, name: str, zone: str
) -> dict[str, Any]:
    labels = {POOL_LABEL: request.pool, **request.labels} if request.pool else request.labels
    items = [{"key": LABELS_ITEM, "value": json.dumps(labels, sort_keys=True)}]
    if request.user_data:
        items.append({"key": "user-data", "value": request.user_data})
    interface: dict[str, Any] = {"nicType": "GVNIC"}
    if settings.subnetwork:
        interface["subnetwork"] = settings.subnetwork
    else:
        interface["network"] = settings.network
    if settings.external_ip:
        interface["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    scheduling: dict[str, Any] = {
        # GPU machines cannot live-migrate through host maintenance.
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": not request.spot,
        "provisioningModel": "SPOT" if request.spot else "STANDARD",
    }
    if request.spot:
        # Stopped, not deleted: list() reports it PREEMPTED until navarch deletes it.
        scheduling["instanceTerminationAction"] = "STOP"
    body: dict[str, Any] = {
        "name": name,
        "machineType": f"zones/{zone}/machineTypes/{request.instance_type}",
        "disks": [
            {
                "boot": True,
                "autoDelete": True,
                "initializeParams": {
                    "sourceImage": settings.image,
                    "diskSizeGb": str(settings.disk_size_gb),
                },
            }
        ],
        "networkInterfaces": [interface],
        "scheduling": scheduling,
        "metadata": {"items": items},
        "labels": gcp_labels(labels, request.pool),
    }
    if settings.service_account_email:
        body["serviceAccounts"] = [
            {
                "email": settings.service_account_email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
        ]
    return body


def to_instance(
    resource: dict[str, Any], provider: str, deleting: Collection[str] = ()
) -> Instance:
    """The `Instance` that a Compute Engine instance resource describes; one in `deleting` is
    TERMINATING, whatever its status."""
    name = need(resource, "name", str, "an instance")
    what = f"instance {name}"
    status = need(resource, "status", str, what)
    zone = last_segment(need(resource, "zone", str, what))
    labels = _navarch_labels(resource)
    scheduling = resource.get("scheduling")
    spot = isinstance(scheduling, dict) and (
        scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True
    )
    state = STATES.get(status, InstanceState.PROVISIONING)
    return Instance(
        instance_id=name,
        provider=provider,
        instance_type=last_segment(need(resource, "machineType", str, what)),
        state=InstanceState.TERMINATING if name in deleting else state,
        region=region_of(zone),
        zone=zone,
        pool=labels.get(POOL_LABEL, ""),
        labels=labels,
        created_at=_timestamp(resource.get("creationTimestamp")),
        spot=spot,
        address=_address(resource),
    )


def _address(resource: dict[str, Any]) -> str:
    """Where navarch reaches the machine: the external IP of its first interface, else that
    interface's internal one; empty before Compute Engine assigned one."""
    interfaces = resource.get("networkInterfaces")
    first = interfaces[0] if isinstance(interfaces, list) and interfaces else None
    if not isinstance(first, dict):
        return ""
    configs = first.get("accessConfigs")
    config = configs[0] if isinstance(configs, list) and configs else None
    external = config.get("natIP") if isinstance(config, dict) else None
    if isinstance(external, str) and external:
        return external
    internal = first.get("networkIP")
    return internal if isinstance(internal, str) else ""


def _navarch_labels(resource: dict[str, Any]) -> dict[str, str]:
    """The labels navarch gave the machine, from its metadata item; from its GCP labels when the
    item is missing or damaged (someone edited the metadata)."""
    metadata = resource.get("metadata")
    items = metadata.get("items") if isinstance(metadata, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("key") == LABELS_ITEM:
            try:
                labels = json.loads(str(item.get("value")))
            except ValueError:
                break
            if isinstance(labels, dict):
                return {str(k): str(v) for k, v in labels.items()}
    gcp = resource.get("labels")
    pool = gcp.get(POOL_KEY) if isinstance(gcp, dict) else None
    return {POOL_LABEL: str(pool)} if pool else {}


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
