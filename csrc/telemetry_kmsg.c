/* /dev/kmsg reader (kernel ABI: Documentation/ABI/testing/dev-kmsg).
 *
 * Device mode follows the kernel's read semantics: one whole record per read(), EAGAIN when none
 * is left, EPIPE when the ring overwrote the reader's position (the next read returns the oldest
 * record, and the jump in sequence numbers says how many were lost), EINVAL when a record does
 * not fit the buffer. Stream mode reads the same records one per line from a file or a pipe, so
 * tests and `navarch xid scan --file` use the same parser.
 * _kmsg_python.py mirrors every rule here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "telemetry_kmsg.h"

/* Up to max_digits decimal digits; returns how many it read, or 0 on overflow. */
static size_t dec_u64(const char *p, const char *end, size_t max_digits, uint64_t *out)
{
    size_t n = 0;
    uint64_t v = 0;
    while (p + n < end && n < max_digits && p[n] >= '0' && p[n] <= '9') {
        uint64_t d = (uint64_t)(p[n] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

/* A header field: digits up to the next ',' */
static const char *field(const char *p, const char *semi, size_t max_digits, uint64_t *out)
{
    size_t n = dec_u64(p, semi, max_digits, out);
    if (n == 0 || p + n >= semi || p[n] != ',')
        return NULL;
    return p + n + 1;
}

int navarch_kmsg_parse_record(const char *rec, size_t len, int trust_user, navarch_kmsg_record *out)
{
    const char *end = rec + len;
    const char *semi = memchr(rec, ';', len);
    const char *p = rec;
    uint64_t prio;

    if (!semi)
        return 0;
    if (!(p = field(p, semi, 10, &prio)) || prio > 0x7fffffff ||
        !(p = field(p, semi, 20, &out->seq)))
        return 0;
    if (!(p = field(p, semi, 20, &out->ts_usec)))
        return 0;
    if (p >= semi || (*p != '-' && *p != 'c' && *p != '+') || (p + 1 != semi && p[1] != ','))
        return 0;
    out->flag = *p;
    out->facility = (int32_t)(prio >> 3);
    out->level = (int32_t)(prio & 7);

    const char *msg = semi + 1;
    const char *nl = memchr(msg, '\n', (size_t)(end - msg));
    const char *msg_end = nl ? nl : end;
    if (msg_end > msg && msg_end[-1] == '\r')
        msg_end--;
    size_t msg_len = (size_t)(msg_end - msg);
    size_t keep = msg_len < NAVARCH_KMSG_TEXT_LEN ? msg_len : NAVARCH_KMSG_TEXT_LEN - 1;
    memcpy(out->text, msg, keep);
    out->text[keep] = '\0';
    out->text_len = (uint32_t)keep;
    out->truncated = keep < msg_len;

    out->xid.code = 0;
    if ((out->facility == 0 || trust_user) && navarch_xid_parse(msg, msg_len, &out->xid)) {
        /* The detail must point into the stored text, which may be shorter than the message. */
        uint32_t off = out->xid.detail_off, stop = off + out->xid.detail_len;
        if (stop > keep)
            stop = (uint32_t)keep;
        out->xid.detail_len = off < stop ? stop - off : 0;
    }
    return 1;
}

void navarch_kmsg_reader_init(navarch_kmsg_reader *r, int fd, int mode)
{
    memset(r, 0, offsetof(navarch_kmsg_reader, buf));
    r->fd = fd;
    r->mode = mode;
    r->read_size = NAVARCH_KMSG_DEVICE_READ;
}

/* Accounts one record; returns 1 when the caller should keep it in the output. */
static int take(navarch_kmsg_reader *r, const char *rec, size_t len, navarch_kmsg_record *slot,
                int flags)
{
    if (!navarch_kmsg_parse_record(rec, len, r->trust_user, slot)) {
        r->malformed++;
        return 0;
    }
    uint64_t seq = slot->seq;
    if (r->has_skip && seq <= r->skip_through) {
        r->skipped++;
        return 0;
    }
    if (r->has_last && seq > r->last_seq)
        r->lost += seq - r->last_seq - 1;
    if (!r->has_last || seq > r->last_seq) {
        r->has_last = 1;
        r->last_seq = seq;
    }
    r->records++;
    if (slot->xid.code)
        r->xids++;
    return !(flags & NAVARCH_KMSG_ONLY_XID) || slot->xid.code;
}

static int drain_device(navarch_kmsg_reader *r, navarch_kmsg_record *out, uint32_t cap, int flags,
                        uint32_t *n_out)
{
    uint32_t n = 0;
    size_t size = r->read_size < sizeof r->buf ? r->read_size : sizeof r->buf;
    while (n < cap) {
        ssize_t got = read(r->fd, r->buf, size);
        if (got < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EPIPE) {
                r->overruns++;
                continue;
            }
            if (err == EINVAL) {
                /* The kernel keeps offering the record that does not fit, so reading on would
                 * spin. Jump to the end; the next record's sequence number counts the loss. */
                r->oversized++;
                if (lseek(r->fd, 0, SEEK_END) < 0) {
                    *n_out = n;
                    return -errno;
                }
                continue;
            }
            *n_out = n;
            return err == EAGAIN || err == EWOULDBLOCK ? NAVARCH_KMSG_AGAIN : -err;
        }
        if (got == 0) {
            *n_out = n;
            return NAVARCH_KMSG_EOF;
        }
        if (take(r, r->buf, (size_t)got, &out[n], flags))
            n++;
    }
    *n_out = n;
    return NAVARCH_KMSG_FULL;
}

static int stream_line(navarch_kmsg_reader *r, const char *line, size_t len,
                       navarch_kmsg_record *slot, int flags)
{
    /* Blank lines and the " KEY=value" dictionary lines that follow a record are not records. */
    if (len == 0 || line[0] == ' ')
        return 0;
    return take(r, line, len, slot, flags);
}

static int drain_stream(navarch_kmsg_reader *r, navarch_kmsg_record *out, uint32_t cap, int flags,
                        uint32_t *n_out)
{
    uint32_t n = 0;
    for (;;) {
        while (n < cap) {
            char *s = r->buf + r->start;
            char *nl = memchr(s, '\n', r->len - r->start);
            if (!nl)
                break;
            r->start += (uint32_t)(nl - s) + 1;
            if (stream_line(r, s, (size_t)(nl - s), &out[n], flags))
                n++;
        }
        if (n == cap) {
            *n_out = n;
            return NAVARCH_KMSG_FULL;
        }
        if (r->start) {
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->len == sizeof r->buf) {
            r->oversized++;
            r->discarding = 1;
            r->len = 0;
        }
        ssize_t got = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (got < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            *n_out = n;
            return err == EAGAIN || err == EWOULDBLOCK ? NAVARCH_KMSG_AGAIN : -err;
        }
        if (got == 0) {
            /* A last line without '\n' still counts once the stream has ended. */
            if (r->len && !r->discarding && stream_line(r, r->buf, r->len, &out[n], flags))
                n++;
            r->len = 0;
            r->discarding = 0;
            *n_out = n;
            return NAVARCH_KMSG_EOF;
        }
        if (r->discarding) {
            char *nl = memchr(r->buf, '\n', (size_t)got);
            if (!nl)
                continue;
            r->len = (uint32_t)(got - (nl + 1 - r->buf));
            memmove(r->buf, nl + 1, r->len);
            r->discarding = 0;
        } else {
            r->len += (uint32_t)got;
        }
    }
}

int navarch_kmsg_drain(navarch_kmsg_reader *r, navarch_kmsg_record *out, uint32_t cap, int flags,
                       uint32_t *n_out)
{
    *n_out = 0;
    if (cap == 0)
        return NAVARCH_KMSG_FULL;
    if (r->mode == NAVARCH_KMSG_MODE_DEVICE)
        return drain_device(r, out, cap, flags, n_out);
    return drain_stream(r, out, cap, flags, n_out);
}
