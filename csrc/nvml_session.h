/* What telemetry_nvml.c and telemetry_nvml_fields.c share of an NVML session: its entry
 * points, its per-GPU state and the rules for recording a value's code. Not part of the
 * extension's Python surface (telemetry_nvml.h). */
#ifndef NAVARCH_NVML_SESSION_H
#define NAVARCH_NVML_SESSION_H

#include "nvml_abi.h"
#include "telemetry_nvml.h"

#include <pthread.h>

/* Every entry point navarch may call. Where NVML offers several versions, the newer one comes
 * first in each group and the sampling code falls back only when it is missing. */
#define NVML_FUNCTIONS(X)                                                                         \
    X(nvmlReturn_t, nvmlInitWithFlags, (unsigned int))                                            \
    X(nvmlReturn_t, nvmlInit_v2, (void))                                                          \
    X(nvmlReturn_t, nvmlInit, (void))                                                             \
    X(nvmlReturn_t, nvmlShutdown, (void))                                                         \
    X(const char *, nvmlErrorString, (nvmlReturn_t))                                              \
    X(nvmlReturn_t, nvmlDeviceGetCount_v2, (unsigned int *))                                      \
    X(nvmlReturn_t, nvmlDeviceGetCount, (unsigned int *))                                         \
    X(nvmlReturn_t, nvmlDeviceGetHandleByIndex_v2, (unsigned int, nvmlDevice_t *))                \
    X(nvmlReturn_t, nvmlDeviceGetHandleByIndex, (unsigned int, nvmlDevice_t *))                   \
    X(nvmlReturn_t, nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int))                      \
    X(nvmlReturn_t, nvmlDeviceGetUUID, (nvmlDevice_t, char *, unsigned int))                      \
    X(nvmlReturn_t, nvmlDeviceGetPciInfo_v3, (nvmlDevice_t, nvmlPciInfo_t *))                     \
    X(nvmlReturn_t, nvmlDeviceGetPciInfo_v2, (nvmlDevice_t, nvmlPciInfo_t *))                     \
    X(nvmlReturn_t, nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t, nvmlMemory_v2_t *))                \
    X(nvmlReturn_t, nvmlDeviceGetMemoryInfo, (nvmlDevice_t, nvmlMemory_t *))                      \
    X(nvmlReturn_t, nvmlDeviceGetUtilizationRates, (nvmlDevice_t, nvmlUtilization_t *))           \
    X(nvmlReturn_t, nvmlDeviceGetTemperatureV, (nvmlDevice_t, nvmlTemperature_v1_t *))            \
    X(nvmlReturn_t, nvmlDeviceGetTemperature, (nvmlDevice_t, int, unsigned int *))                \
    X(nvmlReturn_t, nvmlDeviceGetTemperatureThreshold, (nvmlDevice_t, int, unsigned int *))       \
    X(nvmlReturn_t, nvmlDeviceGetPowerUsage, (nvmlDevice_t, unsigned int *))                      \
    X(nvmlReturn_t, nvmlDeviceGetEnforcedPowerLimit, (nvmlDevice_t, unsigned int *))              \
    X(nvmlReturn_t, nvmlDeviceGetPowerManagementLimit, (nvmlDevice_t, unsigned int *))            \
    X(nvmlReturn_t, nvmlDeviceGetTotalEccErrors, (nvmlDevice_t, int, int, unsigned long long *))  \
    X(nvmlReturn_t, nvmlDeviceGetRetiredPages_v2,                                                 \
      (nvmlDevice_t, int, unsigned int *, unsigned long long *, unsigned long long *))            \
    X(nvmlReturn_t, nvmlDeviceGetRetiredPages,                                                    \
      (nvmlDevice_t, int, unsigned int *, unsigned long long *))                                  \
    X(nvmlReturn_t, nvmlDeviceGetRetiredPagesPendingStatus, (nvmlDevice_t, int *))                \
    X(nvmlReturn_t, nvmlDeviceGetRemappedRows,                                                    \
      (nvmlDevice_t, unsigned int *, unsigned int *, unsigned int *, unsigned int *))             \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkState, (nvmlDevice_t, unsigned int, int *))                \
    X(nvmlReturn_t, nvmlDeviceGetPcieReplayCounter, (nvmlDevice_t, unsigned int *))               \
    X(nvmlReturn_t, nvmlDeviceGetCurrPcieLinkGeneration, (nvmlDevice_t, unsigned int *))          \
    X(nvmlReturn_t, nvmlDeviceGetMaxPcieLinkGeneration, (nvmlDevice_t, unsigned int *))           \
    X(nvmlReturn_t, nvmlDeviceGetCurrPcieLinkWidth, (nvmlDevice_t, unsigned int *))               \
    X(nvmlReturn_t, nvmlDeviceGetMaxPcieLinkWidth, (nvmlDevice_t, unsigned int *))                \
    X(nvmlReturn_t, nvmlDeviceGetCurrentClocksEventReasons, (nvmlDevice_t, unsigned long long *)) \
    X(nvmlReturn_t, nvmlDeviceGetCurrentClocksThrottleReasons,                                    \
      (nvmlDevice_t, unsigned long long *))                                                       \
    X(nvmlReturn_t, nvmlDeviceGetFieldValues, (nvmlDevice_t, int, nvmlFieldValue_t *))            \
    X(nvmlReturn_t, nvmlDeviceGetComputeRunningProcesses_v3,                                      \
      (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *))                                        \
    X(nvmlReturn_t, nvmlDeviceGetComputeRunningProcesses_v2,                                      \
      (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *))                                        \
    X(nvmlReturn_t, nvmlDeviceGetGraphicsRunningProcesses_v3,                                     \
      (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *))                                        \
    X(nvmlReturn_t, nvmlDeviceGetGraphicsRunningProcesses_v2,                                     \
      (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *))                                        \
    X(nvmlReturn_t, nvmlEventSetCreate, (nvmlEventSet_t *))                                       \
    X(nvmlReturn_t, nvmlDeviceGetSupportedEventTypes, (nvmlDevice_t, unsigned long long *))       \
    X(nvmlReturn_t, nvmlDeviceRegisterEvents, (nvmlDevice_t, unsigned long long, nvmlEventSet_t)) \
    X(nvmlReturn_t, nvmlEventSetWait_v2, (nvmlEventSet_t, nvmlEventData_t *, unsigned int))       \
    X(nvmlReturn_t, nvmlEventSetWait, (nvmlEventSet_t, nvmlEventData_t *, unsigned int))          \
    X(nvmlReturn_t, nvmlEventSetFree, (nvmlEventSet_t))

struct nvml_functions {
#define DECLARE(ret, name, args) ret(*name) args;
    NVML_FUNCTIONS(DECLARE)
#undef DECLARE
};

/* A value that does not change while the driver runs, once NVML has given an answer that will
 * not change either. */
struct settled {
    int known;
    nvmlReturn_t rc;
    unsigned int value;
};

enum { PCIE_MAX_GEN, PCIE_MAX_WIDTH };

/* The sample's values that nvmlDeviceGetFieldValues serves as well as a call of their own. Only
 * those whose field means exactly what the call returns are here: power (an average or an
 * instant reading depending on the GPU), the T.Limit temperatures (offsets, not thresholds),
 * clocks, memory, utilization and the PCIe link have no such field. */
enum {
    G_ECC_CORRECTED_VOLATILE,
    G_ECC_UNCORRECTED_VOLATILE,
    G_ECC_CORRECTED_AGGREGATE,
    G_ECC_UNCORRECTED_AGGREGATE,
    G_RETIRED_PAGES_SBE,
    G_RETIRED_PAGES_DBE,
    G_RETIRED_PAGES_PENDING,
    G_REMAPPED_ROWS,
    G_PCIE_REPLAY,
    G_NVLINK,
    G_COUNT
};

/* How one GPU's values of a group are read. A group starts in the batch; an entry that fails
 * is asked again with the group's own call, whose answer the sample keeps. When that call
 * succeeds, the driver cannot serve the field and the group leaves the batch for the session;
 * when it fails the same way, that failure is trusted from the batch from then on. */
struct route {
    unsigned char own_call;
    nvmlReturn_t agreed; /* 0: none yet */
};

#define FIELD_ONLY 5 /* the values that have no call of their own (read_fields) */
#define MAX_ENTRIES (FIELD_ONLY + 12 + NAVARCH_NVML_MAX_LINKS)

struct routes {
    struct route group[G_COUNT];
    /* The links the batch asks for NVLINK_GET_STATE, learned from one full read by
     * nvmlDeviceGetNvLinkState in which every link answered; 0 until then. */
    unsigned int nvlink_links;
    /* The batch as the routes lay it out, copied for each call; built again when they change. */
    int built;
    unsigned int entries;
    unsigned int size[G_COUNT];
    nvmlFieldValue_t batch[MAX_ENTRIES];
};

struct navarch_nvml {
    void *library;
    struct nvml_functions fn;
    pthread_mutex_t lock; /* guards handles: sample() fills in those that failed at open */
    unsigned int count;
    nvmlDevice_t *handles;
    nvmlReturn_t *handle_rc;
    struct settled (*pcie_max)[2]; /* per GPU, by PCIE_MAX_*; only sample() touches it */
    struct routes *routes;         /* per GPU; only sample() touches it */
    int batched;                   /* 0: every value by its own call (navarch_nvml_set_batched) */
};

/* A lost GPU fails every later call, slowly on some drivers, so sampling it stops at the first
 * GPU_IS_LOST. RESET_REQUIRED still lets the error counters through, and those matter most then. */
static inline void record(navarch_nvml_gpu *g, int field, nvmlReturn_t rc) {
    g->rc[field] = rc;
    if ((rc == NVML_ERROR_GPU_IS_LOST || rc == NVML_ERROR_RESET_REQUIRED) &&
        g->status != NVML_ERROR_GPU_IS_LOST)
        g->status = rc;
}

#define STEP(g, field, call)                                                                      \
    do {                                                                                          \
        if ((g)->status == NVML_ERROR_GPU_IS_LOST) (g)->rc[field] = NVML_ERROR_GPU_IS_LOST;       \
        else record((g), (field), (call));                                                        \
    } while (0)

#define MISSING NVML_ERROR_FUNCTION_NOT_FOUND

/* Whether the batch reads `group` for a GPU; r is NULL where a session reads without it. */
static inline int navarch_nvml_in_batch(const struct routes *r, int group) {
    if (r == NULL || r->group[group].own_call) return 0;
    return group != G_NVLINK || r->nvlink_links > 0;
}

/* The group's values by its own call, as a session without the batch reads them. */
nvmlReturn_t navarch_nvml_read_group(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g,
                                     int group);
/* telemetry_nvml_fields.c: learns the GPU's links from a read by nvmlDeviceGetNvLinkState. */
void navarch_nvml_learn_nvlink(struct routes *r, const navarch_nvml_gpu *g);
/* telemetry_nvml_fields.c: the one nvmlDeviceGetFieldValues call of a GPU's sample. */
void navarch_nvml_read_fields(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g,
                              struct routes *r);
/* The navarch_nvml_gpu.rc entry of each group. */
extern const int navarch_nvml_group_field[G_COUNT];

#endif
