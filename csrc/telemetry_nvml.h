/* NVML half of navarch._telemetry: one call samples every GPU; events arrive from a blocking wait.
 *
 * The extension never links libnvidia-ml. navarch_nvml_open() dlopens it and resolves each symbol
 * on its own, so a driver that lacks a function only loses the metrics that need it.
 * Keep this file and telemetry_nvml.cdef in step: cffi compares the two when it builds. Python
 * decodes navarch_nvml_gpu as bytes, through the ctypes copy of it in _nvml_ctypes.GpuRecord, so
 * keep that in step too (a test compares the layouts).
 */
#ifndef NAVARCH_TELEMETRY_NVML_H
#define NAVARCH_TELEMETRY_NVML_H

#include <stddef.h>

/* NVML_NVLINK_MAX_LINKS in nvml.h 13.0 (nvidia-ml-py 13.615); 12.x headers said 18. */
#define NAVARCH_NVML_MAX_LINKS 36
#define NAVARCH_NVML_NAME_LEN 96   /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define NAVARCH_NVML_UUID_LEN 96   /* NVML_DEVICE_UUID_V2_BUFFER_SIZE */
#define NAVARCH_NVML_BUS_ID_LEN 32 /* NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE */

/* Index into navarch_nvml_gpu.rc: one return code per NVML query. */
enum {
    NAVARCH_NVML_F_NAME,
    NAVARCH_NVML_F_UUID,
    NAVARCH_NVML_F_PCI_BUS_ID,
    NAVARCH_NVML_F_MEMORY,
    NAVARCH_NVML_F_UTILIZATION,
    NAVARCH_NVML_F_TEMPERATURE,
    NAVARCH_NVML_F_TEMPERATURE_SLOWDOWN,
    NAVARCH_NVML_F_TEMPERATURE_SHUTDOWN,
    NAVARCH_NVML_F_POWER_USAGE,
    NAVARCH_NVML_F_POWER_LIMIT,
    NAVARCH_NVML_F_ECC_CORRECTED_VOLATILE,
    NAVARCH_NVML_F_ECC_UNCORRECTED_VOLATILE,
    NAVARCH_NVML_F_ECC_CORRECTED_AGGREGATE,
    NAVARCH_NVML_F_ECC_UNCORRECTED_AGGREGATE,
    NAVARCH_NVML_F_RETIRED_PAGES_SBE,
    NAVARCH_NVML_F_RETIRED_PAGES_DBE,
    NAVARCH_NVML_F_RETIRED_PAGES_PENDING,
    NAVARCH_NVML_F_REMAPPED_ROWS,
    NAVARCH_NVML_F_NVLINK,
    NAVARCH_NVML_F_PCIE_REPLAY,
    NAVARCH_NVML_F_PCIE_LINK_GEN,
    NAVARCH_NVML_F_PCIE_LINK_GEN_MAX,
    NAVARCH_NVML_F_PCIE_LINK_WIDTH,
    NAVARCH_NVML_F_PCIE_LINK_WIDTH_MAX,
    NAVARCH_NVML_F_CLOCK_EVENT_REASONS,
    NAVARCH_NVML_F_RECOVERY_ACTION,
    NAVARCH_NVML_F_NVLINK_REPLAY_ERRORS,
    NAVARCH_NVML_F_NVLINK_RECOVERY_ERRORS,
    NAVARCH_NVML_F_NVLINK_CRC_FLIT_ERRORS,
    NAVARCH_NVML_F_NVLINK_CRC_DATA_ERRORS,
    NAVARCH_NVML_F_COUNT
};

typedef struct navarch_nvml navarch_nvml;
typedef struct navarch_nvml_events navarch_nvml_events;

typedef struct {
    unsigned int index;
    int status; /* 0, or the code that makes the whole GPU unusable (GPU_IS_LOST, RESET_REQUIRED) */
    char name[NAVARCH_NVML_NAME_LEN];
    char uuid[NAVARCH_NVML_UUID_LEN];
    char pci_bus_id[NAVARCH_NVML_BUS_ID_LEN];
    unsigned long long memory_total;
    unsigned long long memory_used;
    unsigned int utilization_gpu;
    unsigned int utilization_memory;
    int temperature;
    unsigned int temperature_slowdown;
    unsigned int temperature_shutdown;
    unsigned int power_usage;
    unsigned int power_limit;
    unsigned long long ecc_corrected_volatile;
    unsigned long long ecc_uncorrected_volatile;
    unsigned long long ecc_corrected_aggregate;
    unsigned long long ecc_uncorrected_aggregate;
    unsigned int retired_pages_sbe;
    unsigned int retired_pages_dbe;
    unsigned char retired_pages_pending;
    unsigned int remapped_rows_corrected;
    unsigned int remapped_rows_uncorrected;
    unsigned char remapped_rows_pending;
    unsigned char remapped_rows_failure;
    unsigned int pcie_replay_counter;
    unsigned int pcie_link_gen;
    unsigned int pcie_link_gen_max; /* the _max values are read once per session */
    unsigned int pcie_link_width;
    unsigned int pcie_link_width_max;
    unsigned long long clock_event_reasons;
    unsigned long long recovery_action;
    /* Summed over the GPU's links since the driver loaded, from nvmlDeviceGetFieldValues. */
    unsigned long long nvlink_replay_errors;
    unsigned long long nvlink_recovery_errors;
    unsigned long long nvlink_crc_flit_errors;
    unsigned long long nvlink_crc_data_errors;
    unsigned int nvlink_count; /* entries of nvlink_state that hold a result */
    signed char nvlink_state[NAVARCH_NVML_MAX_LINKS]; /* 1 up, 0 down, -1 the link's query failed */
    int rc[NAVARCH_NVML_F_COUNT];
} navarch_nvml_gpu;

typedef struct {
    int gpu_index; /* -1 when the event names a device this session does not know */
    unsigned long long event_type;
    unsigned long long event_data;
    unsigned int gpu_instance_id;
    unsigned int compute_instance_id;
} navarch_nvml_event;

/* Which processes navarch_nvml_processes lists. */
enum { NAVARCH_NVML_COMPUTE_PROCESSES, NAVARCH_NVML_GRAPHICS_PROCESSES };

typedef struct {
    unsigned int pid;
    unsigned long long used_memory; /* bytes; all ones where NVML cannot tell (NVML_VALUE_NOT_AVAILABLE) */
    unsigned int gpu_instance_id;
    unsigned int compute_instance_id;
} navarch_nvml_process;

int navarch_nvml_open(const char *path, navarch_nvml **out, char *error, size_t error_len);
void navarch_nvml_close(navarch_nvml *s);
unsigned int navarch_nvml_device_count(const navarch_nvml *s);
/* 1 (the default): read the values NVML also serves as fields in one nvmlDeviceGetFieldValues
 * call per GPU, falling back per value; 0: every value by its own call, as for a driver without
 * that call. For benchmarks and cross-checks; both give identical samples. */
void navarch_nvml_set_batched(navarch_nvml *s, int batched);
/* Samples every GPU into out[0..capacity); one call at a time per session. */
unsigned int navarch_nvml_sample(navarch_nvml *s, navarch_nvml_gpu *out, unsigned int capacity);
int navarch_nvml_events_create(navarch_nvml *s, unsigned long long mask, navarch_nvml_events **out,
                               unsigned long long *registered, unsigned int capacity);
int navarch_nvml_events_wait(navarch_nvml_events *e, unsigned int timeout_ms, navarch_nvml_event *out);
void navarch_nvml_events_free(navarch_nvml_events *e);
/* Lists the processes of one kind that use GPU `index` into out[0..capacity). SUCCESS: *count
 * processes were written. INSUFFICIENT_SIZE: there are *count of them, more than capacity; ask
 * again with room for more, since processes come and go between calls. Else NVML's code. */
int navarch_nvml_processes(navarch_nvml *s, unsigned int index, int kind, navarch_nvml_process *out,
                           unsigned int capacity, unsigned int *count);

#endif
