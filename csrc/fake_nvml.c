/* A fake libnvidia-ml for tests and benchmarks on machines without NVIDIA GPUs.
 *
 * It exports the NVML entry points that navarch and nvidia-ml-py call, with the real struct
 * layouts, over devices whose values the caller sets through the fakeNvml* functions below.
 * dlopen() returns the same instance for the same path within a process, so a test that loads
 * this file with ctypes controls the devices that navarch and pynvml see.
 *
 * Build:  cc -shared -fPIC -pthread -o libnvidia-ml.so.1 fake_nvml.c
 * Variants drop entry points the way older or smaller drivers do:
 *   -DFAKE_NO_REMAPPED_ROWS  no nvmlDeviceGetRemappedRows (pre-Ampere drivers)
 *   -DFAKE_LEGACY            only the older entry points of every versioned family
 *   -DFAKE_NO_FIELD_VALUES   no nvmlDeviceGetFieldValues (drivers before it, or that hide it)
 * FAKE_NVML_DEVICES (environment, default 2) sets how many devices exist when the library loads.
 *
 * A GPU reset runs in another process (the daemon's reset command), so it reaches the fake through
 * a file: each line "reset INDEX" appended to the file that FAKE_NVML_CONTROL names resets that
 * device, with the outcome set in its reset_outcome, the next time NVML is initialised or asked
 * for its devices, as a driver that comes back after a reset is found again.
 */

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvml_abi.h"

#define EXPORT __attribute__((visibility("default")))

#define MAX_DEVICES 64
#define MAX_LINKS 36
#define QUEUE_LEN 256
#define MAX_PROCESSES 256
#define NVLINK_COUNTERS 4 /* NVML_NVLINK_ERROR_DL_REPLAY, _RECOVERY, _CRC_FLIT, _CRC_DATA */
#define MAX_FIELD_OVERRIDES 8

/* What a reset does to a device (its reset_outcome). */
enum { RESET_CLEAN, RESET_FAILS, RESET_LOST };

/* Every exported NVML function, so calls can be counted and their return code overridden. */
#define FAKE_FUNCTIONS(X)                                                                         \
    X(nvmlInitWithFlags) X(nvmlInit_v2) X(nvmlInit) X(nvmlShutdown) X(nvmlDeviceGetCount_v2)      \
    X(nvmlDeviceGetCount) X(nvmlDeviceGetHandleByIndex_v2) X(nvmlDeviceGetHandleByIndex)          \
    X(nvmlDeviceGetName) X(nvmlDeviceGetUUID) X(nvmlDeviceGetPciInfo_v3)                          \
    X(nvmlDeviceGetPciInfo_v2) X(nvmlDeviceGetMemoryInfo_v2) X(nvmlDeviceGetMemoryInfo)           \
    X(nvmlDeviceGetUtilizationRates) X(nvmlDeviceGetTemperatureV) X(nvmlDeviceGetTemperature)     \
    X(nvmlDeviceGetTemperatureThreshold) X(nvmlDeviceGetPowerUsage)                               \
    X(nvmlDeviceGetEnforcedPowerLimit) X(nvmlDeviceGetPowerManagementLimit)                       \
    X(nvmlDeviceGetTotalEccErrors) X(nvmlDeviceGetRetiredPages_v2) X(nvmlDeviceGetRetiredPages)   \
    X(nvmlDeviceGetRetiredPagesPendingStatus) X(nvmlDeviceGetRemappedRows)                        \
    X(nvmlDeviceGetNvLinkState) X(nvmlDeviceGetNvLinkErrorCounter) X(nvmlDeviceGetPcieReplayCounter) \
    X(nvmlDeviceGetCurrPcieLinkGeneration) X(nvmlDeviceGetMaxPcieLinkGeneration)                  \
    X(nvmlDeviceGetCurrPcieLinkWidth) X(nvmlDeviceGetMaxPcieLinkWidth)                            \
    X(nvmlDeviceGetCurrentClocksEventReasons) X(nvmlDeviceGetCurrentClocksThrottleReasons)        \
    X(nvmlDeviceGetFieldValues) X(nvmlDeviceGetComputeRunningProcesses_v3)                       \
    X(nvmlDeviceGetComputeRunningProcesses_v2) X(nvmlDeviceGetGraphicsRunningProcesses_v3)        \
    X(nvmlDeviceGetGraphicsRunningProcesses_v2) X(nvmlEventSetCreate) X(nvmlDeviceGetSupportedEventTypes)         \
    X(nvmlDeviceRegisterEvents) X(nvmlEventSetWait_v2) X(nvmlEventSetWait) X(nvmlEventSetFree)

enum {
#define ENUMERATE(name) FN_##name,
    FAKE_FUNCTIONS(ENUMERATE)
#undef ENUMERATE
    FN_COUNT
};

static const char *const function_names[] = {
#define NAME(name) #name,
    FAKE_FUNCTIONS(NAME)
#undef NAME
};

struct nvmlDevice_st {
    int lost;
    char name[96];
    char uuid[96];
    unsigned int pci_domain, pci_bus, pci_device, pci_device_id;
    unsigned long long memory_total, memory_used, memory_reserved;
    unsigned long long utilization_gpu, utilization_memory;
    unsigned long long temperature, temperature_slowdown, temperature_shutdown;
    unsigned long long power_usage, enforced_power_limit, power_management_limit;
    unsigned long long ecc_corrected_volatile, ecc_uncorrected_volatile;
    unsigned long long ecc_corrected_aggregate, ecc_uncorrected_aggregate;
    unsigned long long retired_pages_sbe, retired_pages_dbe, retired_pages_pending;
    unsigned long long remapped_rows_corrected, remapped_rows_uncorrected;
    unsigned long long remapped_rows_pending, remapped_rows_failure;
    unsigned long long nvlink_links, nvlink_up_mask, nvlink_unsupported_mask;
    /* Links whose NVLINK_GET_STATE field says SLEEP; nvmlDeviceGetNvLinkState calls them up. */
    unsigned long long nvlink_sleep_mask;
    unsigned long long pcie_replay_counter, clock_event_reasons, recovery_action;
    unsigned long long pcie_link_gen, pcie_link_gen_max, pcie_link_width, pcie_link_width_max;
    unsigned long long nvlink_errors[NVLINK_COUNTERS][MAX_LINKS];
    unsigned long long supported_events;
    unsigned long long reset_outcome, resets;
    /* Running processes: [0] compute, [1] graphics. */
    unsigned int process_count[2];
    unsigned int process_pid[2][MAX_PROCESSES];
    unsigned long long process_memory[2][MAX_PROCESSES];
    int has_override[FN_COUNT];
    nvmlReturn_t override_rc[FN_COUNT];
    /* Fields of nvmlDeviceGetFieldValues made to report a code, by field id. */
    unsigned int field_overrides;
    unsigned int field_override_id[MAX_FIELD_OVERRIDES];
    nvmlReturn_t field_override_rc[MAX_FIELD_OVERRIDES];
};

struct queued_event {
    unsigned int index;
    unsigned long long type, data;
    nvmlReturn_t rc;
};

struct nvmlEventSet_st {
    unsigned long long masks[MAX_DEVICES];
    struct queued_event queue[QUEUE_LEN];
    unsigned int head, tail;
    struct nvmlEventSet_st *next;
};

static struct nvmlDevice_st devices[MAX_DEVICES];
static unsigned int device_count;
static int init_refcount;
static unsigned long long calls[FN_COUNT];
static int global_override[FN_COUNT];
static nvmlReturn_t global_override_rc[FN_COUNT];
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t events_cond = PTHREAD_COND_INITIALIZER;
static struct nvmlEventSet_st *event_sets;

static int function_id(const char *name) {
    for (int i = 0; i < FN_COUNT; i++)
        if (strcmp(function_names[i], name) == 0) return i;
    return -1;
}

/* Counts the call and returns the code the test wants this call to fail with, or SUCCESS. */
static nvmlReturn_t enter(int fn) {
    __atomic_fetch_add(&calls[fn], 1, __ATOMIC_RELAXED);
    if (global_override[fn]) return global_override_rc[fn];
    if (fn != FN_nvmlInitWithFlags && fn != FN_nvmlInit_v2 && fn != FN_nvmlInit &&
        init_refcount <= 0)
        return NVML_ERROR_UNINITIALIZED;
    return NVML_SUCCESS;
}

static nvmlReturn_t enter_device(int fn, nvmlDevice_t d) {
    nvmlReturn_t rc = enter(fn);
    if (rc != NVML_SUCCESS) return rc;
    if (d < devices || d >= devices + device_count) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->lost) return NVML_ERROR_GPU_IS_LOST;
    if (d->has_override[fn]) return d->override_rc[fn];
    return NVML_SUCCESS;
}

#define ENTER(fn)                                                                                 \
    do {                                                                                          \
        nvmlReturn_t entry_rc_ = enter(FN_##fn);                                                  \
        if (entry_rc_ != NVML_SUCCESS) return entry_rc_;                                          \
    } while (0)

#define ENTER_DEVICE(fn, d)                                                                       \
    do {                                                                                          \
        nvmlReturn_t entry_rc_ = enter_device(FN_##fn, (d));                                      \
        if (entry_rc_ != NVML_SUCCESS) return entry_rc_;                                          \
    } while (0)

static const unsigned int default_buses[] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};

static void default_device(unsigned int i) {
    struct nvmlDevice_st *d = &devices[i];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "NVIDIA H100 80GB HBM3");
    snprintf(d->uuid, sizeof d->uuid, "GPU-%08x-fake-4000-8000-%012x", 0xfa4e0000U + i, i);
    d->pci_bus = i < 8 ? default_buses[i] : i;
    d->pci_device_id = 0x233010de;
    d->memory_total = 81559ULL << 20;
    d->memory_reserved = 570ULL << 20;
    d->memory_used = (1ULL + i) << 30;
    d->utilization_gpu = (10U * i) % 101U;
    d->utilization_memory = (5U * i) % 101U;
    d->temperature = 30 + i;
    d->temperature_slowdown = 87;
    d->temperature_shutdown = 92;
    d->power_usage = 70000 + 1000ULL * i;
    d->enforced_power_limit = 700000;
    d->power_management_limit = 700000;
    d->ecc_corrected_volatile = i;
    d->ecc_corrected_aggregate = 10ULL * i;
    d->nvlink_links = 18;
    d->nvlink_up_mask = (1ULL << 18) - 1;
    d->clock_event_reasons = 0x1;
    d->pcie_link_gen = d->pcie_link_gen_max = 5;
    d->pcie_link_width = d->pcie_link_width_max = 16;
    d->supported_events = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x400 | 0x800 | 0x4000 | 0x8000;
}

EXPORT void fakeNvmlReset(unsigned int count) {
    if (count > MAX_DEVICES) count = MAX_DEVICES;
    device_count = count;
    for (unsigned int i = 0; i < MAX_DEVICES; i++) default_device(i);
    memset(calls, 0, sizeof calls);
    memset(global_override, 0, sizeof global_override);
}

__attribute__((constructor)) static void load(void) {
    const char *count = getenv("FAKE_NVML_DEVICES");
    fakeNvmlReset(count ? (unsigned int)strtoul(count, NULL, 10) : 2);
}

#define FAKE_VALUES(X)                                                                            \
    X(memory_total) X(memory_used) X(memory_reserved) X(utilization_gpu) X(utilization_memory)    \
    X(temperature) X(temperature_slowdown) X(temperature_shutdown) X(power_usage)                 \
    X(enforced_power_limit) X(power_management_limit) X(ecc_corrected_volatile)                   \
    X(ecc_uncorrected_volatile) X(ecc_corrected_aggregate) X(ecc_uncorrected_aggregate)           \
    X(retired_pages_sbe) X(retired_pages_dbe) X(retired_pages_pending)                            \
    X(remapped_rows_corrected) X(remapped_rows_uncorrected) X(remapped_rows_pending)              \
    X(remapped_rows_failure) X(nvlink_links) X(nvlink_up_mask) X(nvlink_unsupported_mask)         \
    X(nvlink_sleep_mask)                                                                          \
    X(pcie_replay_counter) X(clock_event_reasons) X(recovery_action) X(supported_events)          \
    X(pcie_link_gen) X(pcie_link_gen_max) X(pcie_link_width) X(pcie_link_width_max)               \
    X(reset_outcome) X(resets)

/* Sets one numeric value by its name in struct nvmlDevice_st; returns -1 for an unknown name. */
EXPORT int fakeNvmlSetValue(unsigned int index, const char *name, unsigned long long value) {
    if (index >= MAX_DEVICES) return -1;
    struct nvmlDevice_st *d = &devices[index];
#define SET(field)                                                                                \
    if (strcmp(name, #field) == 0) {                                                              \
        d->field = value;                                                                         \
        return 0;                                                                                 \
    }
    FAKE_VALUES(SET)
#undef SET
    if (strcmp(name, "pci_bus") == 0) d->pci_bus = (unsigned int)value;
    else if (strcmp(name, "pci_domain") == 0) d->pci_domain = (unsigned int)value;
    else return -1;
    return 0;
}

/* Reads one numeric value by its name (FAKE_VALUES), such as "resets"; 0 for an unknown name. */
EXPORT unsigned long long fakeNvmlGetValue(unsigned int index, const char *name) {
    if (index >= MAX_DEVICES) return 0;
    struct nvmlDevice_st *d = &devices[index];
#define GET(field)                                                                                \
    if (strcmp(name, #field) == 0) return d->field;
    FAKE_VALUES(GET)
#undef GET
    return 0;
}

EXPORT int fakeNvmlSetString(unsigned int index, const char *name, const char *value) {
    if (index >= MAX_DEVICES) return -1;
    if (strcmp(name, "name") == 0) snprintf(devices[index].name, sizeof devices[index].name, "%s", value);
    else if (strcmp(name, "uuid") == 0) snprintf(devices[index].uuid, sizeof devices[index].uuid, "%s", value);
    else return -1;
    return 0;
}

/* Sets NVLink error counter `counter` (NVML_NVLINK_ERROR_DL_*) of one link of device `index`. */
EXPORT int fakeNvmlSetNvLinkErrors(unsigned int index, unsigned int link, unsigned int counter,
                                   unsigned long long value) {
    if (index >= MAX_DEVICES || link >= MAX_LINKS || counter >= NVLINK_COUNTERS) return -1;
    devices[index].nvlink_errors[counter][link] = value;
    return 0;
}

static int set_field_return(struct nvmlDevice_st *d, unsigned int id, nvmlReturn_t rc) {
    unsigned int i = 0;
    while (i < d->field_overrides && d->field_override_id[i] != id) i++;
    if (i == MAX_FIELD_OVERRIDES) return -1;
    if (i == d->field_overrides) d->field_overrides++;
    d->field_override_id[i] = id;
    d->field_override_rc[i] = rc;
    return 0;
}

/* Makes `function` return `rc` for device `index`, or for every caller when index is -1.
 * The name "field:ID" makes field ID of nvmlDeviceGetFieldValues report `rc` in its entry. */
EXPORT int fakeNvmlSetReturn(int index, const char *function, int rc) {
    if (strncmp(function, "field:", 6) == 0) {
        char *end;
        unsigned long id = strtoul(function + 6, &end, 10);
        if (index < 0 || index >= MAX_DEVICES || end == function + 6 || *end != '\0') return -1;
        return set_field_return(&devices[index], (unsigned int)id, rc);
    }
    int fn = function_id(function);
    if (fn < 0) return -1;
    if (index < 0) {
        global_override[fn] = 1;
        global_override_rc[fn] = rc;
    } else if (index < MAX_DEVICES) {
        devices[index].has_override[fn] = 1;
        devices[index].override_rc[fn] = rc;
    } else {
        return -1;
    }
    return 0;
}

EXPORT unsigned long long fakeNvmlCallCount(const char *function) {
    int fn = function_id(function);
    return fn < 0 ? 0 : __atomic_load_n(&calls[fn], __ATOMIC_RELAXED);
}

static void push(struct nvmlEventSet_st *set, unsigned int index, unsigned long long type,
                 unsigned long long data, nvmlReturn_t rc) {
    if (set->tail - set->head >= QUEUE_LEN) return;
    struct queued_event *q = &set->queue[set->tail % QUEUE_LEN];
    q->index = index;
    q->type = type;
    q->data = data;
    q->rc = rc;
    set->tail++;
}

/* Queues an event on every event set that registered `type` for device `index`; returns how many
 * sets received it, so a test can tell whether a watcher was listening. */
EXPORT int fakeNvmlInjectEvent(unsigned int index, unsigned long long type, unsigned long long data) {
    int delivered = 0;
    if (index >= MAX_DEVICES) return -1;
    pthread_mutex_lock(&events_lock);
    for (struct nvmlEventSet_st *set = event_sets; set != NULL; set = set->next) {
        if (set->masks[index] & type) {
            push(set, index, type, data, NVML_SUCCESS);
            delivered++;
        }
    }
    pthread_cond_broadcast(&events_cond);
    pthread_mutex_unlock(&events_lock);
    return delivered;
}

/* A lost device fails every call with GPU_IS_LOST, and event sets that watch it wake up with it. */
EXPORT void fakeNvmlSetLost(unsigned int index, int lost) {
    if (index >= MAX_DEVICES) return;
    pthread_mutex_lock(&events_lock);
    devices[index].lost = lost;
    if (lost) {
        for (struct nvmlEventSet_st *set = event_sets; set != NULL; set = set->next)
            if (set->masks[index]) push(set, index, 0, 0, NVML_ERROR_GPU_IS_LOST);
        pthread_cond_broadcast(&events_cond);
    }
    pthread_mutex_unlock(&events_lock);
}

/* Sets the running processes of one kind (0 compute, 1 graphics); `memory` may be NULL. */
EXPORT int fakeNvmlSetProcesses(unsigned int index, int graphics, unsigned int count,
                                const unsigned int *pids, const unsigned long long *memory) {
    if (index >= MAX_DEVICES || count > MAX_PROCESSES || graphics < 0 || graphics > 1) return -1;
    struct nvmlDevice_st *d = &devices[index];
    d->process_count[graphics] = count;
    for (unsigned int i = 0; i < count; i++) {
        d->process_pid[graphics][i] = pids[i];
        d->process_memory[graphics][i] = memory ? memory[i] : 0xFFFFFFFFFFFFFFFFULL;
    }
    return 0;
}

/* Resets device `index` as its reset_outcome says. RESET_CLEAN: it answers again with its faults
 * and processes gone (its identity and settings stay); RESET_FAILS: nothing changes; RESET_LOST:
 * it falls off the bus and stays lost. */
EXPORT int fakeNvmlResetDevice(unsigned int index) {
    if (index >= MAX_DEVICES) return -1;
    struct nvmlDevice_st *d = &devices[index];
    d->resets++;
    if (d->reset_outcome == RESET_FAILS) return 0;
    if (d->reset_outcome == RESET_LOST) {
        fakeNvmlSetLost(index, 1);
        return 0;
    }
    d->lost = 0;
    d->ecc_corrected_volatile = d->ecc_uncorrected_volatile = 0;
    d->retired_pages_pending = 0;
    d->remapped_rows_pending = d->remapped_rows_failure = 0;
    d->nvlink_up_mask = d->nvlink_links >= 64 ? ~0ULL : (1ULL << d->nvlink_links) - 1;
    d->pcie_replay_counter = 0;
    d->pcie_link_gen = d->pcie_link_gen_max;
    d->pcie_link_width = d->pcie_link_width_max;
    memset(d->nvlink_errors, 0, sizeof d->nvlink_errors);
    d->clock_event_reasons = 0x1;
    d->recovery_action = 0;
    d->process_count[0] = d->process_count[1] = 0;
    memset(d->has_override, 0, sizeof d->has_override);
    d->field_overrides = 0;
    return 0;
}

/* Carries out the resets that other processes asked for in the FAKE_NVML_CONTROL file. */
static void apply_control(void) {
    const char *path = getenv("FAKE_NVML_CONTROL");
    if (path == NULL || path[0] == '\0') return;
    char taken[4096];
    snprintf(taken, sizeof taken, "%s.taken", path);
    if (rename(path, taken) != 0) return; /* no requests */
    FILE *f = fopen(taken, "r");
    if (f != NULL) {
        unsigned int index;
        char line[128];
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "reset %u", &index) == 1) fakeNvmlResetDevice(index);
        fclose(f);
    }
    remove(taken);
}

static const char *error_string(nvmlReturn_t rc) {
    switch (rc) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

EXPORT const char *nvmlErrorString(nvmlReturn_t rc) { return error_string(rc); }

static nvmlReturn_t init(int fn) {
    nvmlReturn_t rc = enter(fn);
    if (rc != NVML_SUCCESS) return rc;
    apply_control();
    init_refcount++;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return init(FN_nvmlInitWithFlags);
}
#endif

EXPORT nvmlReturn_t nvmlInit_v2(void) { return init(FN_nvmlInit_v2); }
EXPORT nvmlReturn_t nvmlInit(void) { return init(FN_nvmlInit); }

EXPORT nvmlReturn_t nvmlShutdown(void) {
    ENTER(nvmlShutdown);
    init_refcount--;
    return NVML_SUCCESS;
}

static nvmlReturn_t count_devices(unsigned int *count) {
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    apply_control();
    *count = device_count;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    ENTER(nvmlDeviceGetCount_v2);
    return count_devices(count);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) {
    ENTER(nvmlDeviceGetCount);
    return count_devices(count);
}

static nvmlReturn_t handle_by_index(int fn, unsigned int index, nvmlDevice_t *device) {
    if (index >= device_count || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (devices[index].lost) return NVML_ERROR_GPU_IS_LOST;
    if (devices[index].has_override[fn]) return devices[index].override_rc[fn];
    *device = &devices[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetHandleByIndex_v2);
    return handle_by_index(FN_nvmlDeviceGetHandleByIndex_v2, index, device);
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetHandleByIndex);
    return handle_by_index(FN_nvmlDeviceGetHandleByIndex, index, device);
}

static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, value, strlen(value) + 1);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    ENTER_DEVICE(nvmlDeviceGetName, d);
    return copy_string(d->name, name, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    ENTER_DEVICE(nvmlDeviceGetUUID, d);
    return copy_string(d->uuid, uuid, length);
}

static void fill_pci(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    memset(pci, 0, sizeof *pci);
    pci->domain = d->pci_domain;
    pci->bus = d->pci_bus;
    pci->device = d->pci_device;
    pci->pciDeviceId = d->pci_device_id;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", d->pci_domain,
             d->pci_bus, d->pci_device);
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    ENTER_DEVICE(nvmlDeviceGetPciInfo_v3, d);
    fill_pci(d, pci);
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.0", d->pci_domain, d->pci_bus,
             d->pci_device);
    return NVML_SUCCESS;
}
#endif

/* Older drivers fill only the 16-byte legacy bus id. */
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    ENTER_DEVICE(nvmlDeviceGetPciInfo_v2, d);
    fill_pci(d, pci);
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    ENTER_DEVICE(nvmlDeviceGetMemoryInfo_v2, d);
    if (m->version != NVML_STRUCT_VERSION(nvmlMemory_v2_t, 2))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = d->memory_total;
    m->reserved = d->memory_reserved;
    m->used = d->memory_used;
    m->free = d->memory_total - d->memory_used - d->memory_reserved;
    return NVML_SUCCESS;
}
#endif

/* Like the real driver, version 1 counts reserved memory as used. */
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    ENTER_DEVICE(nvmlDeviceGetMemoryInfo, d);
    m->total = d->memory_total;
    m->used = d->memory_used + d->memory_reserved;
    m->free = d->memory_total - m->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    ENTER_DEVICE(nvmlDeviceGetUtilizationRates, d);
    u->gpu = (unsigned int)d->utilization_gpu;
    u->memory = (unsigned int)d->utilization_memory;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t d, nvmlTemperature_v1_t *t) {
    ENTER_DEVICE(nvmlDeviceGetTemperatureV, d);
    if (t->version != NVML_STRUCT_VERSION(nvmlTemperature_v1_t, 1))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (t->sensorType != 0) return NVML_ERROR_INVALID_ARGUMENT;
    t->temperature = (int)d->temperature;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    ENTER_DEVICE(nvmlDeviceGetTemperature, d);
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *t = (unsigned int)d->temperature;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t d, int which, unsigned int *t) {
    ENTER_DEVICE(nvmlDeviceGetTemperatureThreshold, d);
    if (which == 0) *t = (unsigned int)d->temperature_shutdown;
    else if (which == 1) *t = (unsigned int)d->temperature_slowdown;
    else return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    ENTER_DEVICE(nvmlDeviceGetPowerUsage, d);
    *mw = (unsigned int)d->power_usage;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
    ENTER_DEVICE(nvmlDeviceGetEnforcedPowerLimit, d);
    *mw = (unsigned int)d->enforced_power_limit;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned int *mw) {
    ENTER_DEVICE(nvmlDeviceGetPowerManagementLimit, d);
    *mw = (unsigned int)d->power_management_limit;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter,
                                                unsigned long long *count) {
    ENTER_DEVICE(nvmlDeviceGetTotalEccErrors, d);
    if ((type != 0 && type != 1) || (counter != 0 && counter != 1))
        return NVML_ERROR_INVALID_ARGUMENT;
    if (type == 0) *count = counter == 0 ? d->ecc_corrected_volatile : d->ecc_corrected_aggregate;
    else *count = counter == 0 ? d->ecc_uncorrected_volatile : d->ecc_uncorrected_aggregate;
    return NVML_SUCCESS;
}

static nvmlReturn_t retired_pages(nvmlDevice_t d, int cause, unsigned int *count,
                                  unsigned long long *addresses, unsigned long long *times) {
    unsigned int n;
    if (cause == 0) n = (unsigned int)d->retired_pages_sbe;
    else if (cause == 1) n = (unsigned int)d->retired_pages_dbe;
    else return NVML_ERROR_INVALID_ARGUMENT;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int room = *count;
    *count = n;
    if (room < n) return NVML_ERROR_INSUFFICIENT_SIZE;
    for (unsigned int i = 0; i < n; i++) {
        if (addresses) addresses[i] = 0x1000ULL * (i + 1) + (unsigned long long)cause;
        if (times) times[i] = 1700000000ULL + i;
    }
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t d, int cause, unsigned int *count,
                                                 unsigned long long *addresses,
                                                 unsigned long long *times) {
    ENTER_DEVICE(nvmlDeviceGetRetiredPages_v2, d);
    return retired_pages(d, cause, count, addresses, times);
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned int *count,
                                              unsigned long long *addresses) {
    ENTER_DEVICE(nvmlDeviceGetRetiredPages, d);
    return retired_pages(d, cause, count, addresses, NULL);
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int *pending) {
    ENTER_DEVICE(nvmlDeviceGetRetiredPagesPendingStatus, d);
    *pending = d->retired_pages_pending ? 1 : 0;
    return NVML_SUCCESS;
}

#ifndef FAKE_NO_REMAPPED_ROWS
EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corrected,
                                              unsigned int *uncorrected, unsigned int *pending,
                                              unsigned int *failure) {
    ENTER_DEVICE(nvmlDeviceGetRemappedRows, d);
    *corrected = (unsigned int)d->remapped_rows_corrected;
    *uncorrected = (unsigned int)d->remapped_rows_uncorrected;
    *pending = (unsigned int)d->remapped_rows_pending;
    *failure = (unsigned int)d->remapped_rows_failure;
    return NVML_SUCCESS;
}
#endif

/* nvlink_links == 0 models a GPU without NVLink: every link answers NOT_SUPPORTED. */
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned int link, int *active) {
    ENTER_DEVICE(nvmlDeviceGetNvLinkState, d);
    if (d->nvlink_links == 0) return NVML_ERROR_NOT_SUPPORTED;
    if (link >= d->nvlink_links || link >= MAX_LINKS) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->nvlink_unsupported_mask & (1ULL << link)) return NVML_ERROR_NOT_SUPPORTED;
    *active = (d->nvlink_up_mask >> link) & 1ULL ? 1 : 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t d, unsigned int link,
                                                    int counter, unsigned long long *value) {
    ENTER_DEVICE(nvmlDeviceGetNvLinkErrorCounter, d);
    if (d->nvlink_links == 0) return NVML_ERROR_NOT_SUPPORTED;
    if (link >= d->nvlink_links || link >= MAX_LINKS || counter < 0 || counter >= NVLINK_COUNTERS)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (d->nvlink_unsupported_mask & (1ULL << link)) return NVML_ERROR_NOT_SUPPORTED;
    *value = d->nvlink_errors[counter][link];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *value) {
    ENTER_DEVICE(nvmlDeviceGetPcieReplayCounter, d);
    *value = (unsigned int)d->pcie_replay_counter;
    return NVML_SUCCESS;
}

#define PCIE_QUERY(fn, field)                                                                     \
    EXPORT nvmlReturn_t fn(nvmlDevice_t d, unsigned int *value) {                                 \
        ENTER_DEVICE(fn, d);                                                                      \
        *value = (unsigned int)d->field;                                                          \
        return NVML_SUCCESS;                                                                      \
    }
PCIE_QUERY(nvmlDeviceGetCurrPcieLinkGeneration, pcie_link_gen)
PCIE_QUERY(nvmlDeviceGetMaxPcieLinkGeneration, pcie_link_gen_max)
PCIE_QUERY(nvmlDeviceGetCurrPcieLinkWidth, pcie_link_width)
PCIE_QUERY(nvmlDeviceGetMaxPcieLinkWidth, pcie_link_width_max)
#undef PCIE_QUERY

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d,
                                                           unsigned long long *reasons) {
    ENTER_DEVICE(nvmlDeviceGetCurrentClocksEventReasons, d);
    *reasons = d->clock_event_reasons;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d,
                                                              unsigned long long *reasons) {
    ENTER_DEVICE(nvmlDeviceGetCurrentClocksThrottleReasons, d);
    *reasons = d->clock_event_reasons;
    return NVML_SUCCESS;
}

#if !defined(FAKE_LEGACY) && !defined(FAKE_NO_FIELD_VALUES)
static int nvlink_counter(unsigned int field_id) {
    switch (field_id) {
    case NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: return NVML_NVLINK_ERROR_DL_REPLAY;
    case NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: return NVML_NVLINK_ERROR_DL_RECOVERY;
    case NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: return NVML_NVLINK_ERROR_DL_CRC_FLIT;
    default: return NVML_NVLINK_ERROR_DL_CRC_DATA;
    }
}

/* What the *_ERROR_COUNT_TOTAL fields report: one counter summed over the links that have it. */
static nvmlReturn_t nvlink_total(nvmlDevice_t d, int counter, unsigned long long *total) {
    if (d->nvlink_links == 0) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int links = d->nvlink_links < MAX_LINKS ? (unsigned int)d->nvlink_links : MAX_LINKS;
    unsigned long long sum = 0;
    for (unsigned int link = 0; link < links; link++)
        sum += d->nvlink_errors[counter][link] & ((d->nvlink_unsupported_mask >> link) & 1 ? 0 : ~0ULL);
    *total = sum;
    return NVML_SUCCESS;
}

/* A field that serves what an entry point returns answers as that entry point would: with the
 * code a test made it fail with, else with its value. */
static nvmlReturn_t mirrored(nvmlDevice_t d, int fn) {
    if (global_override[fn]) return global_override_rc[fn];
    return d->has_override[fn] ? d->override_rc[fn] : NVML_SUCCESS;
}

static void set_ull(nvmlFieldValue_t *v, int fn, nvmlDevice_t d, unsigned long long value) {
    v->nvmlReturn = mirrored(d, fn);
    v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
    if (v->nvmlReturn == NVML_SUCCESS) v->value.ullVal = value;
}

static void set_uint(nvmlFieldValue_t *v, int fn, nvmlDevice_t d, unsigned long long value) {
    v->nvmlReturn = mirrored(d, fn);
    v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
    if (v->nvmlReturn == NVML_SUCCESS) v->value.uiVal = (unsigned int)value;
}

static void nvlink_state_field(nvmlFieldValue_t *v, nvmlDevice_t d) {
    unsigned int link = v->scopeId;
    v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
    v->nvmlReturn = mirrored(d, FN_nvmlDeviceGetNvLinkState);
    if (v->nvmlReturn != NVML_SUCCESS) return;
    if (d->nvlink_links == 0) v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    else if (link >= d->nvlink_links || link >= MAX_LINKS)
        v->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
    else if (d->nvlink_unsupported_mask & (1ULL << link)) v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    else if (d->nvlink_sleep_mask & (1ULL << link)) v->value.uiVal = NVML_NVLINK_STATE_SLEEP;
    else if ((d->nvlink_up_mask >> link) & 1ULL) v->value.uiVal = NVML_NVLINK_STATE_ACTIVE;
    else v->value.uiVal = NVML_NVLINK_STATE_INACTIVE;
}

static void field_value(nvmlDevice_t d, nvmlFieldValue_t *v) {
    switch (v->fieldId) {
    case NVML_FI_DEV_ECC_SBE_VOL_TOTAL:
        set_ull(v, FN_nvmlDeviceGetTotalEccErrors, d, d->ecc_corrected_volatile);
        break;
    case NVML_FI_DEV_ECC_DBE_VOL_TOTAL:
        set_ull(v, FN_nvmlDeviceGetTotalEccErrors, d, d->ecc_uncorrected_volatile);
        break;
    case NVML_FI_DEV_ECC_SBE_AGG_TOTAL:
        set_ull(v, FN_nvmlDeviceGetTotalEccErrors, d, d->ecc_corrected_aggregate);
        break;
    case NVML_FI_DEV_ECC_DBE_AGG_TOTAL:
        set_ull(v, FN_nvmlDeviceGetTotalEccErrors, d, d->ecc_uncorrected_aggregate);
        break;
    case NVML_FI_DEV_RETIRED_SBE:
        set_ull(v, FN_nvmlDeviceGetRetiredPages_v2, d, d->retired_pages_sbe);
        break;
    case NVML_FI_DEV_RETIRED_DBE:
        set_ull(v, FN_nvmlDeviceGetRetiredPages_v2, d, d->retired_pages_dbe);
        break;
    case NVML_FI_DEV_RETIRED_PENDING:
        set_uint(v, FN_nvmlDeviceGetRetiredPagesPendingStatus, d, d->retired_pages_pending != 0);
        break;
    case NVML_FI_DEV_PCIE_REPLAY_COUNTER:
        set_uint(v, FN_nvmlDeviceGetPcieReplayCounter, d, d->pcie_replay_counter);
        break;
    case NVML_FI_DEV_REMAPPED_COR:
    case NVML_FI_DEV_REMAPPED_UNC:
    case NVML_FI_DEV_REMAPPED_PENDING:
    case NVML_FI_DEV_REMAPPED_FAILURE: {
#ifdef FAKE_NO_REMAPPED_ROWS
        v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
#else
        const unsigned long long rows[] = {d->remapped_rows_corrected, d->remapped_rows_uncorrected,
                                           d->remapped_rows_pending, d->remapped_rows_failure};
        set_uint(v, FN_nvmlDeviceGetRemappedRows, d, rows[v->fieldId - NVML_FI_DEV_REMAPPED_COR]);
#endif
        break;
    }
    case NVML_FI_DEV_NVLINK_GET_STATE: nvlink_state_field(v, d); break;
    case NVML_FI_DEV_GET_GPU_RECOVERY_ACTION:
        v->nvmlReturn = NVML_SUCCESS;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        v->value.uiVal = (unsigned int)d->recovery_action;
        break;
    case NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL:
    case NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL:
    case NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL:
    case NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL:
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
        v->nvmlReturn = nvlink_total(d, nvlink_counter(v->fieldId), &v->value.ullVal);
        break;
    default: v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    }
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values) {
    ENTER_DEVICE(nvmlDeviceGetFieldValues, d);
    if (count < 0 || values == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        unsigned int o = 0;
        while (o < d->field_overrides && d->field_override_id[o] != v->fieldId) o++;
        v->timestamp = 1700000000000000LL;
        v->latencyUsec = 0;
        v->value.ullVal = 0;
        if (o < d->field_overrides) v->nvmlReturn = d->field_override_rc[o];
        else field_value(d, v);
    }
    return NVML_SUCCESS;
}
#endif

/* NVML's contract: *count holds the room on the way in and the number of processes on the way out;
 * INSUFFICIENT_SIZE when they do not fit. */
static nvmlReturn_t running_processes(nvmlDevice_t d, int kind, unsigned int *count,
                                      nvmlProcessInfo_t *infos) {
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int n = d->process_count[kind], room = *count;
    *count = n;
    if (n == 0) return NVML_SUCCESS;
    if (room < n || infos == NULL) return NVML_ERROR_INSUFFICIENT_SIZE;
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = d->process_pid[kind][i];
        infos[i].usedGpuMemory = d->process_memory[kind][i];
        infos[i].gpuInstanceId = 0xFFFFFFFFU;
        infos[i].computeInstanceId = 0xFFFFFFFFU;
    }
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_t *infos) {
    ENTER_DEVICE(nvmlDeviceGetComputeRunningProcesses_v3, d);
    return running_processes(d, 0, count, infos);
}

EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    ENTER_DEVICE(nvmlDeviceGetGraphicsRunningProcesses_v3, d);
    return running_processes(d, 1, count, infos);
}
#endif

/* The _v2 queries fill the same struct as _v3; the legacy build has only these. */
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_t *infos) {
    ENTER_DEVICE(nvmlDeviceGetComputeRunningProcesses_v2, d);
    return running_processes(d, 0, count, infos);
}

EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t d, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    ENTER_DEVICE(nvmlDeviceGetGraphicsRunningProcesses_v2, d);
    return running_processes(d, 1, count, infos);
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    ENTER(nvmlEventSetCreate);
    struct nvmlEventSet_st *s = calloc(1, sizeof *s);
    if (s == NULL) return NVML_ERROR_UNKNOWN;
    pthread_mutex_lock(&events_lock);
    s->next = event_sets;
    event_sets = s;
    pthread_mutex_unlock(&events_lock);
    *set = s;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    ENTER_DEVICE(nvmlDeviceGetSupportedEventTypes, d);
    *types = d->supported_events;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                             nvmlEventSet_t set) {
    ENTER_DEVICE(nvmlDeviceRegisterEvents, d);
    if (types & ~d->supported_events) return NVML_ERROR_NOT_SUPPORTED;
    pthread_mutex_lock(&events_lock);
    set->masks[d - devices] |= types;
    pthread_mutex_unlock(&events_lock);
    return NVML_SUCCESS;
}

static nvmlReturn_t wait_event(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&events_lock);
    while (set->head == set->tail) {
        if (pthread_cond_timedwait(&events_cond, &events_lock, &deadline) == ETIMEDOUT &&
            set->head == set->tail) {
            pthread_mutex_unlock(&events_lock);
            return NVML_ERROR_TIMEOUT;
        }
    }
    struct queued_event q = set->queue[set->head % QUEUE_LEN];
    set->head++;
    pthread_mutex_unlock(&events_lock);
    memset(data, 0, sizeof *data);
    data->device = &devices[q.index];
    data->eventType = q.type;
    data->eventData = q.data;
    data->gpuInstanceId = 0xFFFFFFFFU;
    data->computeInstanceId = 0xFFFFFFFFU;
    return q.rc;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data,
                                        unsigned int timeout_ms) {
    ENTER(nvmlEventSetWait_v2);
    return wait_event(set, data, timeout_ms);
}
#endif

EXPORT nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data,
                                     unsigned int timeout_ms) {
    ENTER(nvmlEventSetWait);
    return wait_event(set, data, timeout_ms);
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    ENTER(nvmlEventSetFree);
    pthread_mutex_lock(&events_lock);
    for (struct nvmlEventSet_st **p = &event_sets; *p != NULL; p = &(*p)->next) {
        if (*p == set) {
            *p = set->next;
            break;
        }
    }
    pthread_mutex_unlock(&events_lock);
    free(set);
    return NVML_SUCCESS;
}
