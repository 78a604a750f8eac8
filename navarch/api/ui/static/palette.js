// Which colour each status and health takes in charts, and in which order they stack.

export const STATUSES = [
  ["active", "Active", "green"],
  ["cordoned", "Cordoned", "amber"],
  ["draining", "Draining", "orange"],
  ["drained", "Drained", "brown"],
  ["unhealthy", "Unhealthy", "red"],
];

export const HEALTHS = [
  ["healthy", "Healthy", "green"],
  ["degraded", "Degraded", "amber"],
  ["unhealthy", "Unhealthy", "red"],
  ["unknown", "Unknown", "grey"],
];

export const NODE_STATUSES = [
  "NODE_STATUS_ACTIVE", "NODE_STATUS_CORDONED", "NODE_STATUS_DRAINING", "NODE_STATUS_DRAINED",
  "NODE_STATUS_UNHEALTHY", "NODE_STATUS_TERMINATED",
];

export const HEALTH_STATUSES = [
  "HEALTH_STATUS_HEALTHY", "HEALTH_STATUS_DEGRADED", "HEALTH_STATUS_UNHEALTHY",
  "HEALTH_STATUS_UNKNOWN",
];

// Series of a stacked chart from points holding count maps under `field`.
export function countSeries(points, field, kinds) {
  return kinds.map(([key, name, color]) => ({
    name,
    color,
    points: points.map((point) => ({
      time: new Date(point.time),
      value: (point[field] || {})[key] || 0,
    })),
  }));
}
