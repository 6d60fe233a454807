/* milter_proto.h: the Sendmail milter protocol (version 6) as the MTA speaks it: packets the MTA sends,
 * and a pure, bounded decoder of what a filter answers. No I/O here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MILTER_VERSION 6
/* A packet: 4-byte big-endian length (command byte + data), the command byte, the data. */
#define MILTER_HEADER_LEN 4
/* The largest packet accepted from a filter: a body chunk (64 KiB, 1 MiB with SMFIP_MDS_1M) plus slack. */
#define MILTER_PACKET_MAX (1024u * 1024 + 1024)
/* Body chunks the MTA sends are at most this long (the protocol's default). */
#define MILTER_CHUNK_MAX 65535u

/* Commands, MTA -> filter. */
enum {
        MILTER_CMD_ABORT = 'A',
        MILTER_CMD_BODY = 'B',
        MILTER_CMD_CONNECT = 'C',
        MILTER_CMD_MACRO = 'D',
        MILTER_CMD_BODYEOB = 'E',
        MILTER_CMD_HELO = 'H',
        MILTER_CMD_QUIT_NC = 'K',
        MILTER_CMD_HEADER = 'L',
        MILTER_CMD_MAIL = 'M',
        MILTER_CMD_EOH = 'N',
        MILTER_CMD_OPTNEG = 'O',
        MILTER_CMD_QUIT = 'Q',
        MILTER_CMD_RCPT = 'R',
        MILTER_CMD_DATA = 'T',
        MILTER_CMD_UNKNOWN = 'U',
};

/* Replies and modification requests, filter -> MTA. */
enum {
        MILTER_REPLY_ADDRCPT = '+',
        MILTER_REPLY_DELRCPT = '-',
        MILTER_REPLY_ADDRCPT_PAR = '2',
        MILTER_REPLY_SHUTDOWN = '4',
        MILTER_REPLY_ACCEPT = 'a',
        MILTER_REPLY_REPLBODY = 'b',
        MILTER_REPLY_CONTINUE = 'c',
        MILTER_REPLY_DISCARD = 'd',
        MILTER_REPLY_CHGFROM = 'e',
        MILTER_REPLY_CONN_FAIL = 'f',
        MILTER_REPLY_ADDHEADER = 'h',
        MILTER_REPLY_INSHEADER = 'i',
        MILTER_REPLY_SETSYMLIST = 'l',
        MILTER_REPLY_CHGHEADER = 'm',
        MILTER_REPLY_PROGRESS = 'p',
        MILTER_REPLY_QUARANTINE = 'q',
        MILTER_REPLY_REJECT = 'r',
        MILTER_REPLY_SKIP = 's',
        MILTER_REPLY_TEMPFAIL = 't',
        MILTER_REPLY_REPLYCODE = 'y',
        MILTER_REPLY_OPTNEG = 'O',
};

/* What the MTA may let a filter change (negotiated "actions"). */
enum {
        MILTER_ACT_ADDHDRS = 0x01,
        MILTER_ACT_CHGBODY = 0x02,
        MILTER_ACT_ADDRCPT = 0x04,
        MILTER_ACT_DELRCPT = 0x08,
        MILTER_ACT_CHGHDRS = 0x10,
        MILTER_ACT_QUARANTINE = 0x20,
        MILTER_ACT_CHGFROM = 0x40,
        MILTER_ACT_ADDRCPT_PAR = 0x80,
        MILTER_ACT_SETSYMLIST = 0x100,
        MILTER_ACT_ALL = 0x1ff,
};

/* Steps a filter does not want, or answers it will not send (negotiated "protocol"). */
enum {
        MILTER_P_NOCONNECT = 0x01,
        MILTER_P_NOHELO = 0x02,
        MILTER_P_NOMAIL = 0x04,
        MILTER_P_NORCPT = 0x08,
        MILTER_P_NOBODY = 0x10,
        MILTER_P_NOHDRS = 0x20,
        MILTER_P_NOEOH = 0x40,
        MILTER_P_NR_HDR = 0x80,
        MILTER_P_NOUNKNOWN = 0x100,
        MILTER_P_NODATA = 0x200,
        MILTER_P_SKIP = 0x400,
        MILTER_P_RCPT_REJ = 0x800,
        MILTER_P_NR_CONN = 0x1000,
        MILTER_P_NR_HELO = 0x2000,
        MILTER_P_NR_MAIL = 0x4000,
        MILTER_P_NR_RCPT = 0x8000,
        MILTER_P_NR_DATA = 0x10000,
        MILTER_P_NR_UNKN = 0x20000,
        MILTER_P_NR_EOH = 0x40000,
        MILTER_P_NR_BODY = 0x80000,
        MILTER_P_HDR_LEADSPC = 0x100000,
        /* What this MTA understands: every "no" and "no reply" step, header leading space, skip. */
        MILTER_P_MTA_KNOWS = 0x1fffff,
};

/* The connect command's address family byte. */
enum {
        MILTER_FAMILY_UNKNOWN = 'U',
        MILTER_FAMILY_UNIX = 'L',
        MILTER_FAMILY_INET = '4',
        MILTER_FAMILY_INET6 = '6'
};

/* ---- packets the MTA sends: each appended whole to out ---- */

void milter_put_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* family MILTER_FAMILY_*; addr is the address text ("192.0.2.1", "2001:db8::1", a socket path). */
void milter_put_connect(struct buf *out, const char *hostname, char family, uint16_t port, const char *addr);
void milter_put_helo(struct buf *out, const char *helo);
/* MAIL and RCPT: the address in angle brackets, then each ESMTP parameter ("SIZE=123"). */
void milter_put_mail(struct buf *out, const char *sender, const char *const *params, size_t n_params);
void milter_put_rcpt(struct buf *out, const char *rcpt, const char *const *params, size_t n_params);
/* Macros for the command that follows: names like "j", "{client_addr}", with their values. */
void milter_put_macros(struct buf *out, char for_cmd, const char *const *names, const char *const *values,
                       size_t n);
void milter_put_header(struct buf *out, const char *name, const char *value);
/* A command without data: MILTER_CMD_EOH, _DATA, _BODYEOB, _ABORT, _QUIT, _QUIT_NC. */
void milter_put_simple(struct buf *out, char cmd);
/* One body chunk, at most MILTER_CHUNK_MAX bytes (callers split). */
void milter_put_body(struct buf *out, const void *data, size_t len);

/* ---- what a filter answers ---- */

struct milter_reply {
        char cmd; /* MILTER_REPLY_* */
        /* OPTNEG */
        uint32_t version, actions, protocol;
        /* REPLYCODE: "550 5.7.1 text"; QUARANTINE: the reason; ADDRCPT/DELRCPT: the address;
         * CHGFROM: the sender; header requests: the name. Point into the packet (NUL-terminated there). */
        const char *text;
        /* Header requests: the value; ADDRCPT_PAR and CHGFROM: the ESMTP arguments (may be NULL). */
        const char *value;
        /* CHGHEADER and INSHEADER: the index (CHGHEADER: the n-th header of that name, from 1). */
        uint32_t index;
        /* REPLBODY: a piece of the new body. */
        const uint8_t *data;
        size_t len;
};

/*
 * One whole packet at the start of buf? 1 with *ret_len (header included) when it is complete, 0 when
 * more bytes are needed, -EMSGSIZE for a length field beyond MILTER_PACKET_MAX or zero. Pure.
 */
int milter_packet_complete(const uint8_t *buf, size_t len, size_t *ret_len);

/*
 * Decode one complete packet (as milter_packet_complete() measured it). The strings of ret point into
 * pkt (only read; each is checked to end with a NUL inside it), so pkt must outlive ret. -EBADMSG for a
 * malformed packet (a missing NUL, short integer fields, a bad reply code), -EPROTO for an unknown
 * command. Pure.
 */
int milter_parse_reply(const uint8_t *pkt, size_t len, struct milter_reply *ret);

/* A REPLYCODE text is "4xx x.y.z text" or "5xx x.y.z text" (the x.y.z optional): its code, or -EBADMSG. */
int milter_reply_code(const char *text);
