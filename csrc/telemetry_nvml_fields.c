/* The values of a sample that NVML serves as fields, read in one nvmlDeviceGetFieldValues call
 * per GPU, with each value's own call taking over where an entry fails. See nvml_session.h. */

#include "nvml_session.h"

#include <string.h>

/* A double that is negative, NaN or past the range reads as 0 or the largest count: converting
 * it as it is would be undefined behaviour. _nvml_fields.py clamps the same way. */
static inline unsigned long long double_as_u64(double d) {
    if (!(d >= 0.0)) return 0;
    if (d >= 18446744073709551615.0) return 0xFFFFFFFFFFFFFFFFULL;
    return (unsigned long long)d;
}

static inline unsigned long long field_as_u64(const nvmlFieldValue_t *v) {
    switch (v->valueType) {
    case NVML_VALUE_TYPE_DOUBLE: return double_as_u64(v->value.dVal);
    case NVML_VALUE_TYPE_UNSIGNED_INT: return v->value.uiVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG: return v->value.ulVal;
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG: return (unsigned long long)v->value.sllVal;
    case NVML_VALUE_TYPE_SIGNED_INT: return (unsigned long long)(long long)v->value.siVal;
    case NVML_VALUE_TYPE_UNSIGNED_SHORT: return v->value.usVal;
    default: return v->value.ullVal;
    }
}

const int navarch_nvml_group_field[G_COUNT] = {
    [G_ECC_CORRECTED_VOLATILE] = NAVARCH_NVML_F_ECC_CORRECTED_VOLATILE,
    [G_ECC_UNCORRECTED_VOLATILE] = NAVARCH_NVML_F_ECC_UNCORRECTED_VOLATILE,
    [G_ECC_CORRECTED_AGGREGATE] = NAVARCH_NVML_F_ECC_CORRECTED_AGGREGATE,
    [G_ECC_UNCORRECTED_AGGREGATE] = NAVARCH_NVML_F_ECC_UNCORRECTED_AGGREGATE,
    [G_RETIRED_PAGES_SBE] = NAVARCH_NVML_F_RETIRED_PAGES_SBE,
    [G_RETIRED_PAGES_DBE] = NAVARCH_NVML_F_RETIRED_PAGES_DBE,
    [G_RETIRED_PAGES_PENDING] = NAVARCH_NVML_F_RETIRED_PAGES_PENDING,
    [G_REMAPPED_ROWS] = NAVARCH_NVML_F_REMAPPED_ROWS,
    [G_PCIE_REPLAY] = NAVARCH_NVML_F_PCIE_REPLAY,
    [G_NVLINK] = NAVARCH_NVML_F_NVLINK,
};

/* Each group's field ids, in nvml.h's numbering; NVLink's one id is asked once per link, with the
 * link as its scope. */
static const struct {
    unsigned int count;
    unsigned int ids[4];
} groups[G_COUNT] = {
    [G_ECC_CORRECTED_VOLATILE] = {1, {NVML_FI_DEV_ECC_SBE_VOL_TOTAL}},
    [G_ECC_UNCORRECTED_VOLATILE] = {1, {NVML_FI_DEV_ECC_DBE_VOL_TOTAL}},
    [G_ECC_CORRECTED_AGGREGATE] = {1, {NVML_FI_DEV_ECC_SBE_AGG_TOTAL}},
    [G_ECC_UNCORRECTED_AGGREGATE] = {1, {NVML_FI_DEV_ECC_DBE_AGG_TOTAL}},
    [G_RETIRED_PAGES_SBE] = {1, {NVML_FI_DEV_RETIRED_SBE}},
    [G_RETIRED_PAGES_DBE] = {1, {NVML_FI_DEV_RETIRED_DBE}},
    [G_RETIRED_PAGES_PENDING] = {1, {NVML_FI_DEV_RETIRED_PENDING}},
    [G_REMAPPED_ROWS] = {4,
                         {NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_UNC,
                          NVML_FI_DEV_REMAPPED_PENDING, NVML_FI_DEV_REMAPPED_FAILURE}},
    [G_PCIE_REPLAY] = {1, {NVML_FI_DEV_PCIE_REPLAY_COUNTER}},
    [G_NVLINK] = {0, {NVML_FI_DEV_NVLINK_GET_STATE}},
};

/* The first read of a GPU's links goes through nvmlDeviceGetNvLinkState, which finds where the
 * list ends; the batch asks those links afterwards. A GPU whose links do not all answer keeps
 * the per-link calls, which are what tell a failed link from a missing one. */
void navarch_nvml_learn_nvlink(struct routes *r, const navarch_nvml_gpu *g) {
    nvmlReturn_t rc = g->rc[NAVARCH_NVML_F_NVLINK];
    if (rc == NVML_SUCCESS) {
        for (unsigned int link = 0; link < g->nvlink_count; link++)
            if (g->nvlink_state[link] < 0) rc = NVML_ERROR_NOT_SUPPORTED;
    }
    if (rc == NVML_SUCCESS) r->nvlink_links = g->nvlink_count;
    else if (rc == NVML_ERROR_NOT_SUPPORTED || rc == MISSING) r->group[G_NVLINK].own_call = 1;
    r->built = 0;
}

/* Reads a group's entries into the sample; returns the first entry's failure, else SUCCESS. A
 * link state other than active or inactive (sleeping, traffic disabled) has no answer in
 * nvmlDeviceGetNvLinkState's terms, so it sends the links to their own calls as a failure would.
 * The link count is set only once every link has answered: a fallback counts its own. */
static nvmlReturn_t decode_group(const nvmlFieldValue_t *v, unsigned int n, int group,
                                 navarch_nvml_gpu *g) {
    for (unsigned int i = 0; i < n; i++)
        if (v[i].nvmlReturn != NVML_SUCCESS) return v[i].nvmlReturn;
    switch (group) {
    case G_ECC_CORRECTED_VOLATILE: g->ecc_corrected_volatile = field_as_u64(v); break;
    case G_ECC_UNCORRECTED_VOLATILE: g->ecc_uncorrected_volatile = field_as_u64(v); break;
    case G_ECC_CORRECTED_AGGREGATE: g->ecc_corrected_aggregate = field_as_u64(v); break;
    case G_ECC_UNCORRECTED_AGGREGATE: g->ecc_uncorrected_aggregate = field_as_u64(v); break;
    case G_RETIRED_PAGES_SBE: g->retired_pages_sbe = (unsigned int)field_as_u64(v); break;
    case G_RETIRED_PAGES_DBE: g->retired_pages_dbe = (unsigned int)field_as_u64(v); break;
    case G_RETIRED_PAGES_PENDING: g->retired_pages_pending = field_as_u64(v) != 0; break;
    case G_REMAPPED_ROWS:
        g->remapped_rows_corrected = (unsigned int)field_as_u64(&v[0]);
        g->remapped_rows_uncorrected = (unsigned int)field_as_u64(&v[1]);
        g->remapped_rows_pending = field_as_u64(&v[2]) != 0;
        g->remapped_rows_failure = field_as_u64(&v[3]) != 0;
        break;
    case G_PCIE_REPLAY: g->pcie_replay_counter = (unsigned int)field_as_u64(v); break;
    default:
        for (unsigned int link = 0; link < n; link++) {
            unsigned long long state = field_as_u64(&v[link]);
            if (state != NVML_NVLINK_STATE_ACTIVE && state != NVML_NVLINK_STATE_INACTIVE)
                return NVML_ERROR_UNKNOWN;
            g->nvlink_state[link] = state == NVML_NVLINK_STATE_ACTIVE;
        }
        g->nvlink_count = n;
    }
    return NVML_SUCCESS;
}
/* Settles a group whose entries failed with `code`: its own call answers for this sample. The
 * links go back to their own calls at the first entry that fails, since only those calls tell
 * where the list ends. */
static void fall_back(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g, struct routes *r,
                      int group, nvmlReturn_t code) {
    struct route *route = &r->group[group];
    int field = navarch_nvml_group_field[group];
    STEP(g, field, navarch_nvml_read_group(s, d, g, group));
    nvmlReturn_t own = g->rc[field];
    if (group == G_NVLINK) route->own_call = own != NVML_ERROR_GPU_IS_LOST;
    else if (own == NVML_SUCCESS || own == MISSING) route->own_call = 1;
    else if (own == code) route->agreed = code;
    if (route->own_call) r->built = 0;
}

/* The fields that only nvmlDeviceGetFieldValues serves. The NVLink totals cost nothing more
 * here, where nvmlDeviceGetNvLinkErrorCounter would cost one call per link and counter. */
static const struct {
    unsigned int id;
    int field;
} field_only[FIELD_ONLY] = {
    {NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, NAVARCH_NVML_F_RECOVERY_ACTION},
    {NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, NAVARCH_NVML_F_NVLINK_REPLAY_ERRORS},
    {NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, NAVARCH_NVML_F_NVLINK_RECOVERY_ERRORS},
    {NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, NAVARCH_NVML_F_NVLINK_CRC_FLIT_ERRORS},
    {NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, NAVARCH_NVML_F_NVLINK_CRC_DATA_ERRORS},
};

/* Lays out a GPU's batch: the fields above, then each group in the batch. */
static void build_batch(struct routes *r) {
    unsigned int n = 0;
    for (int i = 0; i < FIELD_ONLY; i++)
        r->batch[n++] = (nvmlFieldValue_t){.fieldId = field_only[i].id};
    for (int group = 0; group < G_COUNT; group++) {
        r->size[group] = 0;
        if (!navarch_nvml_in_batch(r, group)) continue;
        r->size[group] = group == G_NVLINK ? r->nvlink_links : groups[group].count;
        for (unsigned int i = 0; i < r->size[group]; i++, n++) {
            unsigned int id = groups[group].ids[group == G_NVLINK ? 0 : i];
            r->batch[n] = (nvmlFieldValue_t){.fieldId = id, .scopeId = group == G_NVLINK ? i : 0};
        }
    }
    r->entries = n;
    r->built = 1;
}

/* One nvmlDeviceGetFieldValues call for the fields above and every group in the batch; each
 * entry carries its own return code. */
void navarch_nvml_read_fields(navarch_nvml *s, nvmlDevice_t d, navarch_nvml_gpu *g,
                              struct routes *r) {
    unsigned long long *out[FIELD_ONLY] = {&g->recovery_action, &g->nvlink_replay_errors,
                                           &g->nvlink_recovery_errors, &g->nvlink_crc_flit_errors,
                                           &g->nvlink_crc_data_errors};
    nvmlFieldValue_t v[MAX_ENTRIES];
    unsigned int entries = FIELD_ONLY;
    if (r != NULL) {
        if (!r->built) build_batch(r);
        entries = r->entries;
        memcpy(v, r->batch, entries * sizeof *v);
    } else {
        for (int i = 0; i < FIELD_ONLY; i++) v[i] = (nvmlFieldValue_t){.fieldId = field_only[i].id};
    }
    nvmlReturn_t rc = MISSING;
    if (g->status == NVML_ERROR_GPU_IS_LOST) rc = NVML_ERROR_GPU_IS_LOST;
    else if (s->fn.nvmlDeviceGetFieldValues)
        rc = s->fn.nvmlDeviceGetFieldValues(d, (int)entries, v);
    for (int i = 0; i < FIELD_ONLY; i++) {
        if (rc != NVML_SUCCESS) {
            record(g, field_only[i].field, rc);
            continue;
        }
        if (v[i].nvmlReturn == NVML_SUCCESS) *out[i] = field_as_u64(&v[i]);
        record(g, field_only[i].field, v[i].nvmlReturn);
    }
    if (r == NULL) return;
    unsigned int first = FIELD_ONLY;
    for (int group = 0; group < G_COUNT; group++) {
        unsigned int size = r->size[group];
        if (size == 0) continue;
        struct route *route = &r->group[group];
        nvmlReturn_t code = rc == NVML_SUCCESS ? decode_group(&v[first], size, group, g) : rc;
        first += size;
        if (code == NVML_SUCCESS || code == NVML_ERROR_GPU_IS_LOST || code == route->agreed)
            STEP(g, navarch_nvml_group_field[group], code);
        else fall_back(s, d, g, r, group, code);
    }
}
