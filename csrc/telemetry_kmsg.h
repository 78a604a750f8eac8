/* Kernel-log half of navarch._telemetry: a /dev/kmsg reader and the NVIDIA XID line parser.
 *
 * One navarch_kmsg_drain() call reads every record the source has ready into a caller-owned
 * array, parses the record header and, for kernel-facility records, any XID line, so a backlog
 * of thousands of records costs one FFI crossing per batch.
 * navarch/telemetry/_kmsg_python.py implements the same rules in Python; keep the two in step
 * (the tests compare them on random input). Keep telemetry_kmsg.cdef in step with this file.
 */
#ifndef NAVARCH_TELEMETRY_KMSG_H
#define NAVARCH_TELEMETRY_KMSG_H

#include <stddef.h>
#include <stdint.h>

#define NAVARCH_XID_PCI_LEN 24    /* "PCI:" + 8-digit domain + ":bb:dd.f", NUL-terminated */
#define NAVARCH_XID_NAME_LEN 64   /* longer "name=" values are left in the message */
#define NAVARCH_XID_ACTION_LEN 48 /* recovery action names of XID 154 */
#define NAVARCH_XID_UNIT_LEN 48   /* NVLink5 unit names such as "TLW_RX/TLW_RX_PIPE0" */

#define NAVARCH_KMSG_TEXT_LEN 1024  /* message bytes kept per record; longer ones are truncated */
#define NAVARCH_KMSG_BUF_LEN 16384  /* longest stream line (minus one); longer lines are skipped */
#define NAVARCH_KMSG_DEVICE_READ 8192 /* the kernel's CONSOLE_EXT_LOG_MAX: one whole record */

#define NAVARCH_KMSG_MODE_DEVICE 0 /* /dev/kmsg: every read() returns exactly one record */
#define NAVARCH_KMSG_MODE_STREAM 1 /* a file or pipe: one record per line */

#define NAVARCH_KMSG_ONLY_XID 1 /* drain flag: store only records that carry an XID */

#define NAVARCH_KMSG_AGAIN 0 /* the source has nothing more for now */
#define NAVARCH_KMSG_FULL 1  /* the output array is full; call again */
#define NAVARCH_KMSG_EOF 2   /* a file or pipe ended */

typedef struct {
    int32_t code;     /* 0: the text holds no XID */
    int32_t inferred; /* 1: a fallen-off-the-bus line without an XID number, reported as 79 */
    char pci_raw[NAVARCH_XID_PCI_LEN];    /* as the line wrote it, "PCI:0000:3b:00" */
    char pci_bus_id[NAVARCH_XID_PCI_LEN]; /* NVML's form, "00000000:3B:00.0" */
    int64_t pid;      /* -1 when absent or "<unknown>" */
    char name[NAVARCH_XID_NAME_LEN]; /* "" when absent or "<unknown>" */
    /* The message after the XID fields, as offsets into the parsed text (for a record, into
     * its stored, possibly truncated, text). */
    uint32_t detail_off;
    uint32_t detail_len;
    int32_t has_action; /* XID 154 */
    uint32_t action_old;
    uint32_t action_new;
    char action_old_name[NAVARCH_XID_ACTION_LEN];
    char action_new_name[NAVARCH_XID_ACTION_LEN];
    int32_t has_nvlink; /* XID 144-150 */
    int32_t nvl_fatal;
    int32_t nvl_containment; /* the n of "XCn" */
    int32_t nvl_link;
    int32_t nvl_has_error_status;
    uint32_t nvl_intrinfo; /* the first hex value; the subcode is bits 20-25 */
    uint32_t nvl_error_status;
    char nvl_unit[NAVARCH_XID_UNIT_LEN];
} navarch_xid;

typedef struct {
    uint64_t seq;
    uint64_t ts_usec;
    int32_t facility;
    int32_t level;
    int32_t flag; /* '-', 'c' or '+' */
    int32_t truncated;
    uint32_t text_len;
    char text[NAVARCH_KMSG_TEXT_LEN]; /* escaped as the kernel escapes it (\xNN), not unescaped */
    navarch_xid xid; /* only xid.code is set when the record holds no XID */
} navarch_kmsg_record;

typedef struct {
    int fd;
    int mode;
    int trust_user; /* parse XIDs in records of every facility; tests only */
    uint32_t read_size; /* device mode: bytes offered to each read() */
    int has_last;
    uint64_t last_seq; /* highest sequence number seen, for loss accounting */
    int has_skip;
    uint64_t skip_through; /* resume: records with seq <= this were handled before a restart */
    uint64_t records;   /* well-formed records after the resume point */
    uint64_t xids;      /* records that carry an XID */
    uint64_t lost;      /* sequence numbers never seen: overwritten or skipped */
    uint64_t overruns;  /* EPIPE: the kernel overwrote records before they were read */
    uint64_t malformed; /* lines or records that are not kmsg records */
    uint64_t oversized; /* records or lines larger than the buffer, skipped */
    uint64_t skipped;   /* records at or before the resume point */
    uint32_t start;     /* stream mode: consumed bytes at the front of buf */
    uint32_t len;       /* stream mode: bytes held in buf */
    int discarding;     /* stream mode: inside an oversized line, dropping bytes up to '\n' */
    char buf[NAVARCH_KMSG_BUF_LEN];
} navarch_kmsg_reader;

/* Parses one line of text; returns the XID code (79 for the fallen-off-the-bus lines), or 0. */
int navarch_xid_parse(const char *text, size_t len, navarch_xid *out);

/* Parses one kmsg record ("prio,seq,ts,flag[,...];message[\n KEY=value...]"); returns 1, or 0
 * when the text is not a record. XID lines count only in facility 0 unless trust_user is set. */
int navarch_kmsg_parse_record(const char *rec, size_t len, int trust_user, navarch_kmsg_record *out);

void navarch_kmsg_reader_init(navarch_kmsg_reader *r, int fd, int mode);

/* Reads records until the source has none ready, the output is full, or a stream ends. Returns
 * NAVARCH_KMSG_AGAIN, _FULL or _EOF, or -errno; *n_out records are valid in every case. */
int navarch_kmsg_drain(navarch_kmsg_reader *r, navarch_kmsg_record *out, uint32_t cap, int flags,
                       uint32_t *n_out);

#endif
