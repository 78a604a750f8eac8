"""The provision request the GCP tests send, with the fields a test changes."""

from navarch.plugins import POOL_LABEL, ProvisionRequest


def request(**changes):
    fields = {
        "name": "train",
        "instance_type": "a3-highgpu-8g",
        "zone": "us-central1-a",
        "pool": "train",
        "labels": {POOL_LABEL: "train", "navarch.io/team": "Vision"},
        "request_id": "2f1c5a0e-8d4b-4c3a-9e7f-1a2b3c4d5e6f",
    }
    return ProvisionRequest(**{**fields, **changes})
