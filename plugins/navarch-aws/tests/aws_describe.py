"""DescribeInstances replies in EC2's XML, for states that moto cannot put an instance in."""

from __future__ import annotations

from attrs import frozen


@frozen
class Described:
    instance_id: str
    state: str
    # StateReason's code, for an instance that stopped or ended; empty for one that runs.
    reason: str = ""
    pool: str = "train"
    spot: bool = True
    # The public IP; empty for an instance without one.
    public_ip: str = ""
    private_ip: str = "172.31.16.5"


_STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}

_REASON_MESSAGES = {
    "Server.SpotInstanceTermination": "Spot instance termination",
    "Server.SpotInstanceShutdown": "Spot instance shutdown",
    "Server.ScheduledStop": "Stopped due to scheduled retirement",
    "Client.UserInitiatedShutdown": "User initiated shutdown",
    "Client.InstanceInitiatedShutdown": "Instance initiated shutdown",
}


def _item(instance: Described) -> str:
    reason = ""
    if instance.reason:
        message = f"{instance.reason}: {_REASON_MESSAGES[instance.reason]}"
        reason = (
            f"<stateReason><code>{instance.reason}</code><message>{message}</message></stateReason>"
        )
    lifecycle = "<instanceLifecycle>spot</instanceLifecycle>" if instance.spot else ""
    public_ip = f"<ipAddress>{instance.public_ip}</ipAddress>" if instance.public_ip else ""
    return f"""
                <item>
                    <instanceId>{instance.instance_id}</instanceId>
                    <imageId>ami-0abcdef1234567890</imageId>
                    <instanceState><code>{_STATE_CODES[instance.state]}</code><name>{instance.state}</name></instanceState>
                    <privateDnsName/>
                    <dnsName/>
                    <reason/>
                    <amiLaunchIndex>0</amiLaunchIndex>
                    <productCodes/>
                    <instanceType>g5.xlarge</instanceType>
                    <launchTime>2025-06-02T09:30:00.000Z</launchTime>
                    <placement>
                        <availabilityZone>us-east-1b</availabilityZone>
                        <groupName/>
                        <tenancy>default</tenancy>
                    </placement>
                    <monitoring><state>disabled</state></monitoring>
                    <privateIpAddress>{instance.private_ip}</privateIpAddress>
                    {public_ip}
                    {lifecycle}
                    {reason}
                    <tagSet>
                        <item><key>navarch.io/pool</key><value>{instance.pool}</value></item>
                        <item><key>Name</key><value>{instance.pool}</value></item>
                    </tagSet>
                </item>"""


def describe_instances(instances: list[Described], next_token: str = "") -> str:
    """One page of DescribeInstances, one reservation per instance."""
    reservations = "".join(
        f"""
        <item>
            <reservationId>r-0{i:016x}</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>{_item(instance)}
            </instancesSet>
        </item>"""
        for i, instance in enumerate(instances)
    )
    token = f"<nextToken>{next_token}</nextToken>" if next_token else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
    <reservationSet>{reservations}
    </reservationSet>{token}
</DescribeInstancesResponse>"""


def terminate_instances(instance_id: str, previous: str) -> str:
    """TerminateInstances' reply for an instance that was in state `previous`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>59dbff89-35bd-4eac-99ed-example</requestId>
    <instancesSet>
        <item>
            <instanceId>{instance_id}</instanceId>
            <currentState><code>48</code><name>terminated</name></currentState>
            <previousState><code>{_STATE_CODES[previous]}</code><name>{previous}</name></previousState>
        </item>
    </instancesSet>
</TerminateInstancesResponse>"""
