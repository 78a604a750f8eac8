/* NVIDIA XID line parser. Formats: docs/xid.md and gpu-health.md section 1.3.
 *
 * The parser looks at every "NVRM: " in the text and takes the first one that starts a complete
 * XID line or a fallen-off-the-bus line. Anything that does not match in full yields no event: a
 * false XID can cordon a healthy machine, a missed one is caught by NVML events as well.
 * _kmsg_python.py mirrors every rule here.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "telemetry_kmsg.h"

typedef struct {
    uint32_t domain, bus, device, function;
    const char *start, *end;
} pci_addr;

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Up to max_digits hex digits at p; returns how many it read. */
static size_t hex_run(const char *p, const char *end, size_t max_digits, uint32_t *out)
{
    size_t n = 0;
    uint32_t v = 0;
    while (p + n < end && n < max_digits && hex_digit((unsigned char)p[n]) >= 0) {
        v = v * 16 + (uint32_t)hex_digit((unsigned char)p[n]);
        n++;
    }
    *out = v;
    return n;
}

static size_t dec_run(const char *p, const char *end, size_t max_digits, uint64_t *out)
{
    size_t n = 0;
    uint64_t v = 0;
    while (p + n < end && n < max_digits && p[n] >= '0' && p[n] <= '9') {
        v = v * 10 + (uint64_t)(p[n] - '0');
        n++;
    }
    *out = v;
    return n;
}

static int starts(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* [PCI:]domain:bus:device[.function]; the driver prints the domain with 4 or 8 digits and
 * usually drops the function. */
static int parse_pci(const char *p, const char *end, pci_addr *a)
{
    size_t n;
    a->start = p;
    if (starts(p, end, "PCI:"))
        p += 4;
    if (!(n = hex_run(p, end, 8, &a->domain)))
        return 0;
    p += n;
    if (p >= end || *p != ':')
        return 0;
    p++;
    if (!(n = hex_run(p, end, 2, &a->bus)))
        return 0;
    p += n;
    if (p >= end || *p != ':')
        return 0;
    p++;
    if (!(n = hex_run(p, end, 2, &a->device)))
        return 0;
    p += n;
    if (a->device > 0x1f)
        return 0;
    a->function = 0;
    if (p + 1 < end && *p == '.' && p[1] >= '0' && p[1] <= '7') {
        a->function = (uint32_t)(p[1] - '0');
        p += 2;
    }
    a->end = p;
    return 1;
}

/* lspci's "bb:dd.f" without a domain, which some fallen-off-the-bus lines print; domain 0. */
static int parse_pci_short(const char *p, const char *end, pci_addr *a)
{
    a->start = p;
    if (end - p < 7 || hex_run(p, end, 2, &a->bus) != 2 || p[2] != ':' ||
        hex_run(p + 3, end, 2, &a->device) != 2 || p[5] != '.' || p[6] < '0' || p[6] > '7' ||
        a->device > 0x1f)
        return 0;
    a->domain = 0;
    a->function = (uint32_t)(p[6] - '0');
    a->end = p + 7;
    return 1;
}

/* A GPU address in either form, followed by lit. */
static int gpu_address(const char *p, const char *end, const char *lit, pci_addr *a)
{
    return (parse_pci(p, end, a) && starts(a->end, end, lit)) ||
           (parse_pci_short(p, end, a) && starts(a->end, end, lit));
}

static const char *trim_end(const char *start, const char *end)
{
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    return end;
}

static void set_common(navarch_xid *x, const char *text, int code, const pci_addr *a,
                       const char *detail, const char *end)
{
    memset(x, 0, sizeof *x);
    x->code = code;
    x->pid = -1;
    memcpy(x->pci_raw, a->start, (size_t)(a->end - a->start));
    snprintf(x->pci_bus_id, sizeof x->pci_bus_id, "%08X:%02X:%02X.%X", a->domain, a->bus,
             a->device, a->function);
    end = trim_end(detail, end);
    x->detail_off = (uint32_t)(detail - text);
    x->detail_len = (uint32_t)(end - detail);
}

/* "name=" values end at the next ", " and hold no control characters. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= NAVARCH_XID_NAME_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int is_unknown(const char *s, size_t n)
{
    return (n == 9 && memcmp(s, "<unknown>", 9) == 0) ||
           (n == 11 && memcmp(s, "'<unknown>'", 11) == 0);
}

/* Where the next field starts after a value that ends at p, or NULL: ", " separates fields, and
 * the last field may end the line (mend: the end without trailing blanks), with or without a
 * comma. */
static const char *field_end(const char *p, const char *end, const char *mend)
{
    if (starts(p, end, ", "))
        return p + 2;
    if (p == mend || (p + 1 == mend && *p == ','))
        return mend;
    return NULL;
}

/* "pid=N, name=NAME, " where either may be absent or end the line; returns where the message
 * starts. A field that does not parse in full stays in the message. */
static const char *parse_pid_name(const char *p, const char *end, const char *mend, navarch_xid *x)
{
    const char *v, *after, *ns, *ne;
    uint64_t pid = 0;
    size_t n;
    int64_t value;

    if (!starts(p, end, "pid="))
        return p;
    v = p + 4;
    if (starts(v, end, "'<unknown>'")) {
        value = -1;
        after = v + 11;
    } else if (starts(v, end, "<unknown>")) {
        value = -1;
        after = v + 9;
    } else {
        if (!(n = dec_run(v, end, 10, &pid)))
            return p;
        value = (int64_t)pid;
        after = v + n;
    }
    if (!(after = field_end(after, end, mend)))
        return p;
    x->pid = value;
    p = after;
    if (!starts(p, end, "name="))
        return p;
    ns = p + 5;
    ne = memmem(ns, (size_t)(end - ns), ", ", 2);
    if (ne) {
        after = ne + 2;
    } else {
        after = ne = mend;
        if (ne > ns && ne[-1] == ',')
            ne--;
    }
    if (!name_ok(ns, (size_t)(ne - ns)))
        return p;
    if (!is_unknown(ns, (size_t)(ne - ns)))
        memcpy(x->name, ns, (size_t)(ne - ns));
    return after;
}

/* " (Name)" of an XID 154 action: printable ASCII without ')'. */
static const char *action_name(const char *p, const char *end, char *out)
{
    size_t n = 0;
    if (!starts(p, end, " ("))
        return NULL;
    p += 2;
    while (p + n < end && n < NAVARCH_XID_ACTION_LEN - 1) {
        unsigned char c = (unsigned char)p[n];
        if (c < 0x20 || c > 0x7e || c == ')')
            break;
        n++;
    }
    if (n == 0 || p + n >= end || p[n] != ')')
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return p + n + 1;
}

static const char *action_value(const char *p, const char *end, uint32_t *out)
{
    size_t n;
    if (!starts(p, end, "0x") || !(n = hex_run(p + 2, end, 8, out)))
        return NULL;
    return p + 2 + n;
}

/* "GPU recovery action changed from 0x4 (Drain and Reset) to 0x1 (GPU Reset Required)" */
static void parse_recovery_action(const char *p, const char *end, navarch_xid *x)
{
    static const char lead[] = "GPU recovery action changed from ";
    navarch_xid t;
    if (!starts(p, end, lead))
        return;
    p += sizeof lead - 1;
    if (!(p = action_value(p, end, &t.action_old)) ||
        !(p = action_name(p, end, t.action_old_name)) || !starts(p, end, " to ") ||
        !(p = action_value(p + 4, end, &t.action_new)) ||
        !(p = action_name(p, end, t.action_new_name)))
        return;
    x->has_action = 1;
    x->action_old = t.action_old;
    x->action_new = t.action_new;
    memcpy(x->action_old_name, t.action_old_name, sizeof t.action_old_name);
    memcpy(x->action_new_name, t.action_new_name, sizeof t.action_new_name);
}

static int unit_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '/';
}

/* Past a run of one or more spaces, or NULL. */
static const char *spaces(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q == ' ')
        q++;
    return q > p ? q : NULL;
}

/* "Fatal XC0 i0 Link 08 (0x004505c6 0x00000000 ...)", after the unit; the driver pads some fields
 * with runs of spaces, and prints link -1 for an event of no single link. */
static int nvlink5_fields(const char *p, const char *end, navarch_xid *t)
{
    uint64_t v;
    size_t d;
    int negative = 0;

    if (starts(p, end, "Fatal")) {
        t->nvl_fatal = 1;
        p += 5;
    } else if (starts(p, end, "Nonfatal")) {
        t->nvl_fatal = 0;
        p += 8;
    } else {
        return 0;
    }
    if (!(p = spaces(p, end)) || !starts(p, end, "XC"))
        return 0;
    p += 2;
    if (!(d = dec_run(p, end, 2, &v)) || !(p = spaces(p + d, end)) || !starts(p, end, "i"))
        return 0;
    t->nvl_containment = (int32_t)v;
    p += 1;
    if (!(d = dec_run(p, end, 3, &v)) || !(p = spaces(p + d, end)) || !starts(p, end, "Link") ||
        !(p = spaces(p + 4, end)))
        return 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (!(d = dec_run(p, end, 3, &v)) || !(p = spaces(p + d, end)) || !starts(p, end, "(0x"))
        return 0;
    t->nvl_link = negative ? -(int32_t)v : (int32_t)v;
    p += 3;
    if (!(d = hex_run(p, end, 8, &t->nvl_intrinfo)))
        return 0;
    p = spaces(p + d, end);
    t->nvl_has_error_status =
        p && starts(p, end, "0x") && hex_run(p + 2, end, 8, &t->nvl_error_status) > 0;
    if (!t->nvl_has_error_status)
        t->nvl_error_status = 0;
    return 1;
}

/* "NETIR_LINK_EVT Fatal XC0 i0 Link 08 (...)"; a unit may be several words ("MSE Degraded"), so
 * each word end is tried in turn, up to NAVARCH_XID_UNIT_LEN - 1 bytes of unit. */
static void parse_nvlink5(const char *p, const char *end, navarch_xid *x)
{
    const char *q = p, *word, *next;
    navarch_xid t;

    for (;;) {
        word = q;
        while (q < end && q - p < NAVARCH_XID_UNIT_LEN && unit_char((unsigned char)*q))
            q++;
        if (q == word || q - p >= NAVARCH_XID_UNIT_LEN || !(next = spaces(q, end)))
            return;
        if (nvlink5_fields(next, end, &t))
            break;
        q = next;
    }
    x->has_nvlink = 1;
    memcpy(x->nvl_unit, p, (size_t)(q - p));
    x->nvl_unit[q - p] = '\0';
    x->nvl_fatal = t.nvl_fatal;
    x->nvl_containment = t.nvl_containment;
    x->nvl_link = t.nvl_link;
    x->nvl_intrinfo = t.nvl_intrinfo;
    x->nvl_has_error_status = t.nvl_has_error_status;
    x->nvl_error_status = t.nvl_error_status;
}

/* "Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus." after "NVRM: ",
 * or a bare "Xid (PCI:0000:3f:00): 46" with nothing after the code. */
static int parse_xid_form(const char *text, const char *p, const char *end, navarch_xid *x)
{
    pci_addr a;
    uint64_t code;
    size_t n;
    const char *mend;

    if (!parse_pci(p, end, &a) || !starts(a.end, end, "): "))
        return 0;
    p = a.end + 3;
    if (!(n = dec_run(p, end, 5, &code)) || code == 0)
        return 0;
    p += n;
    mend = trim_end(p, end);
    if (p == mend) {
        set_common(x, text, (int)code, &a, p, end);
        return (int)code;
    }
    if (!starts(p, end, ","))
        return 0;
    p++;
    while (p < end && *p == ' ')
        p++;
    navarch_xid fields;
    memset(&fields, 0, sizeof fields);
    fields.pid = -1;
    const char *detail = parse_pid_name(p, end, mend, &fields);
    set_common(x, text, (int)code, &a, detail, end);
    x->pid = fields.pid;
    memcpy(x->name, fields.name, sizeof fields.name);
    detail = text + x->detail_off;
    const char *detail_end = detail + x->detail_len;
    if (code == 154)
        parse_recovery_action(detail, detail_end, x);
    else if (code >= 144 && code <= 150)
        parse_nvlink5(detail, detail_end, x);
    return (int)code;
}

static int fallen_off_bus(const char *text, const char *msg, const pci_addr *a, const char *end,
                          navarch_xid *x)
{
    set_common(x, text, 79, a, msg, end);
    x->inferred = 1;
    return 79;
}

int navarch_xid_parse(const char *text, size_t len, navarch_xid *out)
{
    static const char multi[] = "fallen off the bus and is not responding";
    const char *end = text + len;
    const char *p = text;
    pci_addr a;

    out->code = 0;
    while ((p = memmem(p, (size_t)(end - p), "NVRM: ", 6)) != NULL) {
        const char *q = p + 6;
        if (starts(q, end, "Xid (")) {
            int code = parse_xid_form(text, q + 5, end, out);
            if (code)
                return code;
        } else if (starts(q, end, "GPU at ")) {
            if (gpu_address(q + 7, end, " has fallen off the bus", &a))
                return fallen_off_bus(text, q, &a, end, out);
        } else if (starts(q, end, "GPU ")) {
            if (gpu_address(q + 4, end, ": GPU has fallen off the bus", &a))
                return fallen_off_bus(text, q, &a, end, out);
        } else if (starts(q, end, "The NVIDIA GPU ")) {
            /* One printk with embedded newlines; /dev/kmsg escapes them as \x0a. The same
             * opening also starts "... is not supported" messages, hence the phrase. */
            if (gpu_address(q + 15, end, "", &a) &&
                memmem(a.end, (size_t)(end - a.end), multi, sizeof multi - 1))
                return fallen_off_bus(text, q, &a, end, out);
        }
        p += 1;
    }
    out->code = 0;
    return 0;
}
