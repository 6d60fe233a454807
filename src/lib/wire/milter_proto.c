/* milter_proto.c: milter packets: the MTA's side encoded, the filter's answers decoded (bounded, pure). */
#include "milter_proto.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

static void put_u32(struct buf *out, uint32_t v)
{
        uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        buf_append(out, b, sizeof b);
}

static uint32_t get_u32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Start a packet: the length is filled in by end_packet(). Returns where the packet starts. */
static size_t begin_packet(struct buf *out, char cmd)
{
        size_t start = out->len;
        put_u32(out, 0);
        buf_putc(out, cmd);
        return start;
}

static void end_packet(struct buf *out, size_t start)
{
        uint32_t len = (uint32_t)(out->len - start - MILTER_HEADER_LEN);
        uint8_t b[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
        memcpy(out->data + start, b, sizeof b);
}

static void put_str(struct buf *out, const char *s)
{
        buf_append(out, s ? s : "", strlen(s ? s : "") + 1);
}

void milter_put_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
        size_t p = begin_packet(out, MILTER_CMD_OPTNEG);
        put_u32(out, version);
        put_u32(out, actions);
        put_u32(out, protocol);
        end_packet(out, p);
}

void milter_put_connect(struct buf *out, const char *hostname, char family, uint16_t port, const char *addr)
{
        size_t p = begin_packet(out, MILTER_CMD_CONNECT);
        put_str(out, hostname);
        buf_putc(out, family);
        if (family != MILTER_FAMILY_UNKNOWN) {
                uint8_t b[2] = {(uint8_t)(port >> 8), (uint8_t)port};
                buf_append(out, b, sizeof b);
                put_str(out, addr);
        }
        end_packet(out, p);
}

void milter_put_helo(struct buf *out, const char *helo)
{
        size_t p = begin_packet(out, MILTER_CMD_HELO);
        put_str(out, helo);
        end_packet(out, p);
}

static void put_address(struct buf *out, char cmd, const char *addr, const char *const *params, size_t n)
{
        size_t p = begin_packet(out, cmd);
        buf_putc(out, '<');
        buf_puts(out, addr ? addr : "");
        buf_putc(out, '>');
        buf_putc(out, '\0');
        for (size_t i = 0; i < n; i++)
                put_str(out, params[i]);
        end_packet(out, p);
}

void milter_put_mail(struct buf *out, const char *sender, const char *const *params, size_t n_params)
{
        put_address(out, MILTER_CMD_MAIL, sender, params, n_params);
}

void milter_put_rcpt(struct buf *out, const char *rcpt, const char *const *params, size_t n_params)
{
        put_address(out, MILTER_CMD_RCPT, rcpt, params, n_params);
}

void milter_put_macros(struct buf *out, char for_cmd, const char *const *names, const char *const *values,
                       size_t n)
{
        size_t p = begin_packet(out, MILTER_CMD_MACRO);
        buf_putc(out, for_cmd);
        for (size_t i = 0; i < n; i++) {
                put_str(out, names[i]);
                put_str(out, values[i]);
        }
        end_packet(out, p);
}

void milter_put_header(struct buf *out, const char *name, const char *value)
{
        size_t p = begin_packet(out, MILTER_CMD_HEADER);
        put_str(out, name);
        put_str(out, value);
        end_packet(out, p);
}

void milter_put_simple(struct buf *out, char cmd)
{
        end_packet(out, begin_packet(out, cmd));
}

void milter_put_body(struct buf *out, const void *data, size_t len)
{
        size_t p = begin_packet(out, MILTER_CMD_BODY);
        buf_append(out, data, len < MILTER_CHUNK_MAX ? len : MILTER_CHUNK_MAX);
        end_packet(out, p);
}

/* ---- decoding ---- */

int milter_packet_complete(const uint8_t *buf, size_t len, size_t *ret_len)
{
        if (len < MILTER_HEADER_LEN)
                return 0;
        uint32_t n = get_u32(buf);
        if (n == 0 || n > MILTER_PACKET_MAX)
                return -EMSGSIZE;
        if (len - MILTER_HEADER_LEN < n)
                return 0;
        *ret_len = MILTER_HEADER_LEN + (size_t)n;
        return 1;
}

/* A reader over the packet's data. */
struct rd {
        const uint8_t *p;
        size_t len, off;
};

static const char *rd_str(struct rd *r)
{
        if (r->off >= r->len)
                return NULL;
        const uint8_t *nul = memchr(r->p + r->off, '\0', r->len - r->off);
        if (!nul)
                return NULL;
        const char *s = (const char *)r->p + r->off;
        r->off = (size_t)(nul - r->p) + 1;
        return s;
}

static bool rd_u32(struct rd *r, uint32_t *ret)
{
        if (r->len - r->off < 4)
                return false;
        *ret = get_u32(r->p + r->off);
        r->off += 4;
        return true;
}

int milter_reply_code(const char *text)
{
        if (!text || (text[0] != '4' && text[0] != '5') || text[1] < '0' || text[1] > '9' || text[2] < '0' ||
            text[2] > '9' || (text[3] != ' ' && text[3] != '-' && text[3] != '\0'))
                return -EBADMSG;
        return (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
}

/* The fields after the command byte, by command; r reads the data. */
static int parse_fields(struct rd *r, struct milter_reply *ret)
{
        switch (ret->cmd) {
        case MILTER_REPLY_ACCEPT:
        case MILTER_REPLY_CONTINUE:
        case MILTER_REPLY_DISCARD:
        case MILTER_REPLY_REJECT:
        case MILTER_REPLY_TEMPFAIL:
        case MILTER_REPLY_PROGRESS:
        case MILTER_REPLY_SKIP:
        case MILTER_REPLY_SHUTDOWN:
        case MILTER_REPLY_CONN_FAIL: return 0; /* any data is ignored */
        case MILTER_REPLY_OPTNEG:
                return rd_u32(r, &ret->version) && rd_u32(r, &ret->actions) && rd_u32(r, &ret->protocol)
                               ? 0
                               : -EBADMSG;
        case MILTER_REPLY_REPLYCODE:
                ret->text = rd_str(r);
                return milter_reply_code(ret->text) < 0 ? -EBADMSG : 0;
        case MILTER_REPLY_QUARANTINE:
        case MILTER_REPLY_ADDRCPT:
        case MILTER_REPLY_DELRCPT: ret->text = rd_str(r); return ret->text ? 0 : -EBADMSG;
        case MILTER_REPLY_ADDRCPT_PAR:
        case MILTER_REPLY_CHGFROM:
                ret->text = rd_str(r);
                ret->value = r->off < r->len ? rd_str(r) : NULL; /* the ESMTP arguments are optional */
                return ret->text ? 0 : -EBADMSG;
        case MILTER_REPLY_ADDHEADER:
                ret->text = rd_str(r);
                ret->value = rd_str(r);
                return ret->text && ret->value && *ret->text ? 0 : -EBADMSG;
        case MILTER_REPLY_CHGHEADER:
        case MILTER_REPLY_INSHEADER:
                if (!rd_u32(r, &ret->index))
                        return -EBADMSG;
                ret->text = rd_str(r);
                ret->value = rd_str(r); /* CHGHEADER with an empty value deletes the header */
                return ret->text && ret->value && *ret->text ? 0 : -EBADMSG;
        case MILTER_REPLY_REPLBODY:
                ret->data = r->p + r->off;
                ret->len = r->len - r->off;
                return 0;
        case MILTER_REPLY_SETSYMLIST: return 0; /* not negotiated: ignored */
        default: return -EPROTO;
        }
}

int milter_parse_reply(const uint8_t *pkt, size_t len, struct milter_reply *ret)
{
        *ret = (struct milter_reply){0};
        if (len < MILTER_HEADER_LEN + 1 || get_u32(pkt) != len - MILTER_HEADER_LEN)
                return -EBADMSG;
        ret->cmd = (char)pkt[MILTER_HEADER_LEN];
        struct rd r = {pkt + MILTER_HEADER_LEN + 1, len - MILTER_HEADER_LEN - 1, 0};
        return parse_fields(&r, ret);
}
