/* NVML sampling and events for navarch._telemetry. See telemetry_nvml.h for the contract; the
 * values NVML also serves as fields are read in telemetry_nvml_fields.c. */

#include "nvml_session.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct navarch_nvml_events {
    navarch_nvml *session;
    nvmlEventSet_t set;
};

static void copy_error(char *error, size_t error_len, const char *text) {
    if (error != NULL && error_len > 0) snprintf(error, error_len, "%s", text ? text : "");
}

static nvmlReturn_t get_handle(navarch_nvml *s, unsigned int index, nvmlDevice_t *out) {
    if (s->fn.nvmlDeviceGetHandleByIndex_v2) return s->fn.nvmlDeviceGetHandleByIndex_v2(index, out);
    if (s->fn.nvmlDeviceGetHandleByIndex) return s->fn.nvmlDeviceGetHandleByIndex(index, out);
    return NVML_ERROR_FUNCTION_NOT_FOUND;
}

static void unload(navarch_nvml *s) {
    if (s->library != NULL) dlclose(s->library);
    pthread_mutex_destroy(&s->lock);
    free(s->handles);
    free(s->handle_rc);
    free(s->pcie_max);
    free(s->routes);
    free(s);
}

int navarch_nvml_open(const char *path, navarch_nvml **out, char *error, size_t error_len) {
    *out = NULL;
    navarch_nvml *s = calloc(1, sizeof *s);
    if (s == NULL) return NVML_ERROR_MEMORY;
    pthread_mutex_init(&s->lock, NULL);
    s->library = dlopen(path ? path : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (s->library == NULL) {
        copy_error(error, error_len, dlerror());
        unload(s);
        return NVML_ERROR_LIBRARY_NOT_FOUND;
    }
#define RESOLVE(ret, name, args) s->fn.name = (ret(*) args)dlsym(s->library, #name);
    NVML_FUNCTIONS(RESOLVE)
#undef RESOLVE

    nvmlReturn_t rc = NVML_ERROR_FUNCTION_NOT_FOUND;
    if (s->fn.nvmlInitWithFlags) rc = s->fn.nvmlInitWithFlags(0);
    else if (s->fn.nvmlInit_v2) rc = s->fn.nvmlInit_v2();
    else if (s->fn.nvmlInit) rc = s->fn.nvmlInit();
    if (rc != NVML_SUCCESS) {
        copy_error(error, error_len, s->fn.nvmlErrorString ? s->fn.nvmlErrorString(rc) : "");
        unload(s);
        return rc;
    }

    rc = NVML_ERROR_FUNCTION_NOT_FOUND;
    if (s->fn.nvmlDeviceGetCount_v2) rc = s->fn.nvmlDeviceGetCount_v2(&s->count);
    else if (s->fn.nvmlDeviceGetCount) rc = s->fn.nvmlDeviceGetCount(&s->count);
    if (rc == NVML_SUCCESS) {
        s->handles = calloc(s->count ? s->count : 1, sizeof *s->handles);
        s->handle_rc = calloc(s->count ? s->count : 1, sizeof *s->handle_rc);
        s->pcie_max = calloc(s->count ? s->count : 1, sizeof *s->pcie_max);
        s->routes = calloc(s->count ? s->count : 1, sizeof *s->routes);
        if (s->handles == NULL || s->handle_rc == NULL || s->pcie_max == NULL || s->routes == NULL)
            rc = NVML_ERROR_MEMORY;
    }
    if (rc != NVML_SUCCESS) {
        copy_error(error, error_len, s->fn.nvmlErrorString ? s->fn.nvmlErrorString(rc) : "");
        if (s->fn.nvmlShutdown) s->fn.nvmlShutdown();
        unload(s);
        return rc;
    }
    for (unsigned int i = 0; i < s->count; i++) s->handle_rc[i] = get_handle(s, i, &s->handles[i]);
    s->batched = 1;
    *out = s;
    return NVML_SUCCESS;
}

void navarch_nvml_close(navarch_nvml *s) {
    if (s == NULL) return;
    if (s->fn.nvmlShutdown) s->fn.nvmlShutdown();
    unload(s);
}

unsigned int navarch_nvml_device_count(const navarch_nvml *s) { return s->count; }

void navarch_nvml_set_batched(navarch_nvml *s, int batched) { s->batched = batched != 0; }

static nvmlReturn_t read_pci(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    nvmlPciInfo_t pci;
    nvmlReturn_t rc;
    memset(&pci, 0, sizeof pci);
    if (s->fn.nvmlDeviceGetPciInfo_v3) rc = s->fn.nvmlDeviceGetPciInfo_v3(d, &pci);
    else if (s->fn.nvmlDeviceGetPciInfo_v2) rc = s->fn.nvmlDeviceGetPciInfo_v2(d, &pci);
    else return MISSING;
    if (rc == NVML_SUCCESS) {
        /* What snprintf("%.*s") would copy, without its cost on every sample. */
        const char *id = pci.busId[0] ? pci.busId : pci.busIdLegacy;
        size_t n = strnlen(id, sizeof pci.busId);
        if (n >= sizeof g->pci_bus_id) n = sizeof g->pci_bus_id - 1;
        memcpy(g->pci_bus_id, id, n);
        g->pci_bus_id[n] = '\0';
    }
    return rc;
}

static nvmlReturn_t read_memory(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    nvmlReturn_t rc = MISSING;
    if (s->fn.nvmlDeviceGetMemoryInfo_v2) {
        nvmlMemory_v2_t m;
        memset(&m, 0, sizeof m);
        m.version = NVML_STRUCT_VERSION(nvmlMemory_v2_t, 2);
        rc = s->fn.nvmlDeviceGetMemoryInfo_v2(d, &m);
        if (rc == NVML_SUCCESS) {
            g->memory_total = m.total;
            g->memory_used = m.used;
        }
    }
    if ((rc == MISSING || rc == NVML_ERROR_ARGUMENT_VERSION_MISMATCH) &&
        s->fn.nvmlDeviceGetMemoryInfo) {
        nvmlMemory_t m;
        memset(&m, 0, sizeof m);
        rc = s->fn.nvmlDeviceGetMemoryInfo(d, &m);
        if (rc == NVML_SUCCESS) {
            g->memory_total = m.total;
            g->memory_used = m.used;
        }
    }
    return rc;
}

static nvmlReturn_t read_utilization(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    nvmlUtilization_t u = {0, 0};
    if (!s->fn.nvmlDeviceGetUtilizationRates) return MISSING;
    nvmlReturn_t rc = s->fn.nvmlDeviceGetUtilizationRates(d, &u);
    g->utilization_gpu = u.gpu;
    g->utilization_memory = u.memory;
    return rc;
}

static nvmlReturn_t read_temperature(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    nvmlReturn_t rc = MISSING;
    if (s->fn.nvmlDeviceGetTemperatureV) {
        nvmlTemperature_v1_t t = {NVML_STRUCT_VERSION(nvmlTemperature_v1_t, 1), NVML_TEMPERATURE_GPU, 0};
        rc = s->fn.nvmlDeviceGetTemperatureV(d, &t);
        g->temperature = t.temperature;
    }
    if ((rc == MISSING || rc == NVML_ERROR_ARGUMENT_VERSION_MISMATCH) &&
        s->fn.nvmlDeviceGetTemperature) {
        unsigned int t = 0;
        rc = s->fn.nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &t);
        g->temperature = (int)t;
    }
    return rc;
}

static nvmlReturn_t read_threshold(navarch_nvml *s, nvmlDevice_t d, int which, unsigned int *out) {
    if (!s->fn.nvmlDeviceGetTemperatureThreshold) return MISSING;
    return s->fn.nvmlDeviceGetTemperatureThreshold(d, which, out);
}

static nvmlReturn_t read_power_limit(navarch_nvml *s, nvmlDevice_t d, unsigned int *out) {
    if (s->fn.nvmlDeviceGetEnforcedPowerLimit) return s->fn.nvmlDeviceGetEnforcedPowerLimit(d, out);
    if (s->fn.nvmlDeviceGetPowerManagementLimit)
        return s->fn.nvmlDeviceGetPowerManagementLimit(d, out);
    return MISSING;
}

static nvmlReturn_t read_ecc(navarch_nvml *s, nvmlDevice_t d, int type, int counter,
                             unsigned long long *out) {
    if (!s->fn.nvmlDeviceGetTotalEccErrors) return MISSING;
    return s->fn.nvmlDeviceGetTotalEccErrors(d, type, counter, out);
}

/* Asking with a zero-sized buffer returns the count alone: SUCCESS when no page is retired,
 * INSUFFICIENT_SIZE with the count otherwise. */
static nvmlReturn_t read_retired(navarch_nvml *s, nvmlDevice_t d, int cause, unsigned int *out) {
    nvmlReturn_t rc;
    *out = 0;
    if (s->fn.nvmlDeviceGetRetiredPages_v2)
        rc = s->fn.nvmlDeviceGetRetiredPages_v2(d, cause, out, NULL, NULL);
    else if (s->fn.nvmlDeviceGetRetiredPages)
        rc = s->fn.nvmlDeviceGetRetiredPages(d, cause, out, NULL);
    else return MISSING;
    return rc == NVML_ERROR_INSUFFICIENT_SIZE ? NVML_SUCCESS : rc;
}

static nvmlReturn_t read_retired_pending(navarch_nvml *s, nvmlDevice_t d, unsigned char *out) {
    int pending = 0;
    if (!s->fn.nvmlDeviceGetRetiredPagesPendingStatus) return MISSING;
    nvmlReturn_t rc = s->fn.nvmlDeviceGetRetiredPagesPendingStatus(d, &pending);
    *out = pending != 0;
    return rc;
}

static nvmlReturn_t read_remapped(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    unsigned int pending = 0, failure = 0;
    if (!s->fn.nvmlDeviceGetRemappedRows) return MISSING;
    nvmlReturn_t rc = s->fn.nvmlDeviceGetRemappedRows(d, &g->remapped_rows_corrected,
                                                      &g->remapped_rows_uncorrected, &pending,
                                                      &failure);
    g->remapped_rows_pending = pending != 0;
    g->remapped_rows_failure = failure != 0;
    return rc;
}

/* Links past the device's last one answer INVALID_ARGUMENT, which ends the list. A device without
 * NVLink answers NOT_SUPPORTED for link 0; asking the other links would only repeat that. */
static nvmlReturn_t read_nvlink(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    nvmlReturn_t first = MISSING;
    int any = 0;
    if (!s->fn.nvmlDeviceGetNvLinkState) return MISSING;
    for (unsigned int link = 0; link < NAVARCH_NVML_MAX_LINKS; link++) {
        int active = 0;
        nvmlReturn_t rc = s->fn.nvmlDeviceGetNvLinkState(d, link, &active);
        if (link == 0) first = rc;
        if (rc == NVML_ERROR_INVALID_ARGUMENT) break;
        g->nvlink_state[link] = rc == NVML_SUCCESS ? (active != 0) : -1;
        g->nvlink_count = link + 1;
        if (rc == NVML_SUCCESS) any = 1;
        if (rc == NVML_ERROR_GPU_IS_LOST) return rc;
        if (link == 0 && rc == NVML_ERROR_NOT_SUPPORTED) break;
    }
    return any ? NVML_SUCCESS : first;
}

static nvmlReturn_t read_uint(nvmlReturn_t (*fn)(nvmlDevice_t, unsigned int *), nvmlDevice_t d,
                              unsigned int *out) {
    return fn ? fn(d, out) : MISSING;
}

/* The link's top generation and width belong to the GPU and its slot, so each is asked until
 * NVML gives an answer that holds for the session: a value, NOT_SUPPORTED or FUNCTION_NOT_FOUND. */
static nvmlReturn_t read_pcie_max(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g, int which,
                                  unsigned int *out) {
    struct settled *m = &s->pcie_max[g->index][which];
    if (!m->known) {
        unsigned int value = 0;
        nvmlReturn_t rc = read_uint(which == PCIE_MAX_GEN ? s->fn.nvmlDeviceGetMaxPcieLinkGeneration
                                                          : s->fn.nvmlDeviceGetMaxPcieLinkWidth,
                                    d, &value);
        if (rc != NVML_SUCCESS && rc != NVML_ERROR_NOT_SUPPORTED && rc != MISSING) return rc;
        m->known = 1;
        m->rc = rc;
        m->value = value;
    }
    *out = m->value;
    return m->rc;
}

static nvmlReturn_t read_clock_events(navarch_nvml *s, nvmlDevice_t d, unsigned long long *out) {
    if (s->fn.nvmlDeviceGetCurrentClocksEventReasons)
        return s->fn.nvmlDeviceGetCurrentClocksEventReasons(d, out);
    if (s->fn.nvmlDeviceGetCurrentClocksThrottleReasons)
        return s->fn.nvmlDeviceGetCurrentClocksThrottleReasons(d, out);
    return MISSING;
}

nvmlReturn_t navarch_nvml_read_group(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g,
                                     int group) {
    switch (group) {
    case G_ECC_CORRECTED_VOLATILE:
        return read_ecc(s, d, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC,
                        &g->ecc_corrected_volatile);
    case G_ECC_UNCORRECTED_VOLATILE:
        return read_ecc(s, d, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC,
                        &g->ecc_uncorrected_volatile);
    case G_ECC_CORRECTED_AGGREGATE:
        return read_ecc(s, d, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC,
                        &g->ecc_corrected_aggregate);
    case G_ECC_UNCORRECTED_AGGREGATE:
        return read_ecc(s, d, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC,
                        &g->ecc_uncorrected_aggregate);
    case G_RETIRED_PAGES_SBE:
        return read_retired(s, d, NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                            &g->retired_pages_sbe);
    case G_RETIRED_PAGES_DBE:
        return read_retired(s, d, NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
                            &g->retired_pages_dbe);
    case G_RETIRED_PAGES_PENDING: return read_retired_pending(s, d, &g->retired_pages_pending);
    case G_REMAPPED_ROWS: return read_remapped(s, d, g);
    case G_PCIE_REPLAY:
        return read_uint(s->fn.nvmlDeviceGetPcieReplayCounter, d, &g->pcie_replay_counter);
    default: return read_nvlink(s, d, g);
    }
}

static void sample_one(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g) {
    struct routes *r = s->batched && s->fn.nvmlDeviceGetFieldValues ? &s->routes[g->index] : NULL;
    if (!s->fn.nvmlDeviceGetName) g->rc[NAVARCH_NVML_F_NAME] = MISSING;
    else STEP(g, NAVARCH_NVML_F_NAME, s->fn.nvmlDeviceGetName(d, g->name, sizeof g->name));
    if (!s->fn.nvmlDeviceGetUUID) g->rc[NAVARCH_NVML_F_UUID] = MISSING;
    else STEP(g, NAVARCH_NVML_F_UUID, s->fn.nvmlDeviceGetUUID(d, g->uuid, sizeof g->uuid));
    STEP(g, NAVARCH_NVML_F_PCI_BUS_ID, read_pci(s, d, g));
    STEP(g, NAVARCH_NVML_F_MEMORY, read_memory(s, d, g));
    STEP(g, NAVARCH_NVML_F_UTILIZATION, read_utilization(s, d, g));
    STEP(g, NAVARCH_NVML_F_TEMPERATURE, read_temperature(s, d, g));
    STEP(g, NAVARCH_NVML_F_TEMPERATURE_SLOWDOWN,
         read_threshold(s, d, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &g->temperature_slowdown));
    STEP(g, NAVARCH_NVML_F_TEMPERATURE_SHUTDOWN,
         read_threshold(s, d, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, &g->temperature_shutdown));
    STEP(g, NAVARCH_NVML_F_POWER_USAGE,
         s->fn.nvmlDeviceGetPowerUsage ? s->fn.nvmlDeviceGetPowerUsage(d, &g->power_usage) : MISSING);
    STEP(g, NAVARCH_NVML_F_POWER_LIMIT, read_power_limit(s, d, &g->power_limit));
    for (int group = G_ECC_CORRECTED_VOLATILE; group <= G_NVLINK; group++) {
        if (group == G_PCIE_REPLAY || navarch_nvml_in_batch(r, group)) continue;
        STEP(g, navarch_nvml_group_field[group], navarch_nvml_read_group(s, d, g, group));
        if (group == G_NVLINK && r != NULL && !r->group[G_NVLINK].own_call)
            navarch_nvml_learn_nvlink(r, g);
    }
    if (!navarch_nvml_in_batch(r, G_PCIE_REPLAY))
        STEP(g, NAVARCH_NVML_F_PCIE_REPLAY, navarch_nvml_read_group(s, d, g, G_PCIE_REPLAY));
    STEP(g, NAVARCH_NVML_F_PCIE_LINK_GEN,
         read_uint(s->fn.nvmlDeviceGetCurrPcieLinkGeneration, d, &g->pcie_link_gen));
    STEP(g, NAVARCH_NVML_F_PCIE_LINK_GEN_MAX,
         read_pcie_max(s, d, g, PCIE_MAX_GEN, &g->pcie_link_gen_max));
    STEP(g, NAVARCH_NVML_F_PCIE_LINK_WIDTH,
         read_uint(s->fn.nvmlDeviceGetCurrPcieLinkWidth, d, &g->pcie_link_width));
    STEP(g, NAVARCH_NVML_F_PCIE_LINK_WIDTH_MAX,
         read_pcie_max(s, d, g, PCIE_MAX_WIDTH, &g->pcie_link_width_max));
    STEP(g, NAVARCH_NVML_F_CLOCK_EVENT_REASONS, read_clock_events(s, d, &g->clock_event_reasons));
    navarch_nvml_read_fields(s, d, g, r);
}

unsigned int navarch_nvml_sample(navarch_nvml *s, navarch_nvml_gpu *out, unsigned int capacity) {
    unsigned int n = s->count < capacity ? s->count : capacity;
    for (unsigned int i = 0; i < n; i++) {
        navarch_nvml_gpu *g = &out[i];
        memset(g, 0, sizeof *g);
        g->index = i;
        pthread_mutex_lock(&s->lock);
        if (s->handle_rc[i] != NVML_SUCCESS) s->handle_rc[i] = get_handle(s, i, &s->handles[i]);
        nvmlReturn_t handle_rc = s->handle_rc[i];
        nvmlDevice_t d = s->handles[i];
        pthread_mutex_unlock(&s->lock);
        if (handle_rc != NVML_SUCCESS) {
            g->status = handle_rc;
            for (int f = 0; f < NAVARCH_NVML_F_COUNT; f++) g->rc[f] = handle_rc;
            continue;
        }
        sample_one(s, d, g);
    }
    return n;
}

/* Drivers refuse a whole registration when one type in the mask is unsupported, and older ones
 * lack GetSupportedEventTypes, so fall back to registering the types one by one. */
static unsigned long long register_device(navarch_nvml *s, nvmlDevice_t d, unsigned long long mask,
                                          nvmlEventSet_t set) {
    unsigned long long want = mask, supported = 0;
    if (s->fn.nvmlDeviceGetSupportedEventTypes &&
        s->fn.nvmlDeviceGetSupportedEventTypes(d, &supported) == NVML_SUCCESS)
        want &= supported;
    if (want == 0) return 0;
    if (s->fn.nvmlDeviceRegisterEvents(d, want, set) == NVML_SUCCESS) return want;
    unsigned long long registered = 0;
    for (int bit = 0; bit < 64; bit++) {
        unsigned long long one = 1ULL << bit;
        if ((want & one) && s->fn.nvmlDeviceRegisterEvents(d, one, set) == NVML_SUCCESS)
            registered |= one;
    }
    return registered;
}

int navarch_nvml_events_create(navarch_nvml *s, unsigned long long mask, navarch_nvml_events **out,
                               unsigned long long *registered, unsigned int capacity) {
    *out = NULL;
    if (!s->fn.nvmlEventSetCreate || !s->fn.nvmlDeviceRegisterEvents || !s->fn.nvmlEventSetFree ||
        (!s->fn.nvmlEventSetWait_v2 && !s->fn.nvmlEventSetWait))
        return MISSING;
    navarch_nvml_events *e = calloc(1, sizeof *e);
    if (e == NULL) return NVML_ERROR_MEMORY;
    e->session = s;
    nvmlReturn_t rc = s->fn.nvmlEventSetCreate(&e->set);
    if (rc != NVML_SUCCESS) {
        free(e);
        return rc;
    }
    for (unsigned int i = 0; i < s->count && i < capacity; i++) {
        pthread_mutex_lock(&s->lock);
        nvmlReturn_t handle_rc = s->handle_rc[i];
        nvmlDevice_t d = s->handles[i];
        pthread_mutex_unlock(&s->lock);
        registered[i] = handle_rc == NVML_SUCCESS ? register_device(s, d, mask, e->set) : 0;
    }
    *out = e;
    return NVML_SUCCESS;
}

int navarch_nvml_events_wait(navarch_nvml_events *e, unsigned int timeout_ms, navarch_nvml_event *out) {
    navarch_nvml *s = e->session;
    nvmlEventData_t data;
    memset(&data, 0, sizeof data);
    nvmlReturn_t rc = s->fn.nvmlEventSetWait_v2 ? s->fn.nvmlEventSetWait_v2(e->set, &data, timeout_ms)
                                                : s->fn.nvmlEventSetWait(e->set, &data, timeout_ms);
    out->gpu_index = -1;
    out->event_type = data.eventType;
    out->event_data = data.eventData;
    out->gpu_instance_id = data.gpuInstanceId;
    out->compute_instance_id = data.computeInstanceId;
    if (data.device != NULL) {
        pthread_mutex_lock(&s->lock);
        for (unsigned int i = 0; i < s->count; i++) {
            if (s->handle_rc[i] == NVML_SUCCESS && s->handles[i] == data.device) {
                out->gpu_index = (int)i;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

void navarch_nvml_events_free(navarch_nvml_events *e) {
    if (e == NULL) return;
    e->session->fn.nvmlEventSetFree(e->set);
    free(e);
}

/* Not part of a sample: the daemon asks before it resets a GPU. The versions before _v2 fill a
 * shorter struct, and navarch does not read them. */
int navarch_nvml_processes(navarch_nvml *s, unsigned int index, int kind, navarch_nvml_process *out,
                           unsigned int capacity, unsigned int *count) {
    nvmlReturn_t (*query)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);
    if (kind == NAVARCH_NVML_GRAPHICS_PROCESSES)
        query = s->fn.nvmlDeviceGetGraphicsRunningProcesses_v3
                    ? s->fn.nvmlDeviceGetGraphicsRunningProcesses_v3
                    : s->fn.nvmlDeviceGetGraphicsRunningProcesses_v2;
    else
        query = s->fn.nvmlDeviceGetComputeRunningProcesses_v3
                    ? s->fn.nvmlDeviceGetComputeRunningProcesses_v3
                    : s->fn.nvmlDeviceGetComputeRunningProcesses_v2;
    *count = 0;
    if (query == NULL) return MISSING;
    if (index >= s->count) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&s->lock);
    if (s->handle_rc[index] != NVML_SUCCESS)
        s->handle_rc[index] = get_handle(s, index, &s->handles[index]);
    nvmlReturn_t rc = s->handle_rc[index];
    nvmlDevice_t d = s->handles[index];
    pthread_mutex_unlock(&s->lock);
    if (rc != NVML_SUCCESS) return rc;
    nvmlProcessInfo_t *infos = NULL;
    if (capacity > 0) {
        infos = calloc(capacity, sizeof *infos);
        if (infos == NULL) return NVML_ERROR_MEMORY;
    }
    unsigned int n = capacity;
    rc = query(d, &n, infos);
    if (rc == NVML_SUCCESS) {
        for (unsigned int i = 0; i < n && i < capacity; i++) {
            out[i].pid = infos[i].pid;
            out[i].used_memory = infos[i].usedGpuMemory;
            out[i].gpu_instance_id = infos[i].gpuInstanceId;
            out[i].compute_instance_id = infos[i].computeInstanceId;
        }
    }
    free(infos);
    *count = n;
    return rc;
}
