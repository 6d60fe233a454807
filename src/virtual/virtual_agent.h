/* virtual_agent.h: the virtual delivery agent: Maildir or mbox under virtual_mailbox_base, per-recipient
 * ids. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "agent.h"
#include "maps.h"
#include "queue.h"
#include "resolve.h"

/* Received:/Delivered-To: headers looked at for the loop check (beyond that the header is absurd). */
#define VIRTUAL_HEADERS_SCAN_MAX 100000
/* Attempts at the mbox's fcntl lock, and the pause between them. */
#define VIRTUAL_LOCK_ATTEMPTS   20
#define VIRTUAL_LOCK_DELAY_USEC (250 * USEC_PER_MSEC)

struct virtual_agent {
        struct queue *queue;
        struct resolve *resolve; /* virtual_mailbox_maps: the mailbox of each recipient */
        struct maps *uid_maps, *gid_maps;
        char *base; /* virtual_mailbox_base */
        char *hostname;
        long long minimum_uid;
        uint64_t mailbox_limit; /* virtual_mailbox_limit; 0: none */
};

/* What is written: the message as queued, behind Return-Path: and Delivered-To:. */
struct virtual_message {
        const char *queue_id;
        const char *sender; /* "" for <> */
        const char *rcpt;   /* Delivered-To: value */
        const char *content;
        size_t content_len;
};

/* ---- mailbox.c: run with the recipient's effective ids; a verdict is "sent" only once durable ---- */

/* Deliver into the Maildir dir (created with tmp/ new/ cur/ as needed). */
void virtual_maildir(const char *dir, const char *hostname, const struct virtual_message *m,
                     struct agent_verdict *ret);
/* Append to the mbox file path (created as needed), under an fcntl lock. */
void virtual_mbox(const char *path, const struct virtual_message *m, struct agent_verdict *ret);

/* ---- deliver.c ---- */

/* agent_rcpt_fn: look the recipient up, take its ids and deliver to its mailbox. */
void virtual_deliver(void *userdata, const struct delivery_request *dr, const struct qfile_msg *msg,
                     const struct qfile_rcpt *rcpt, struct agent_verdict *ret);

/* Pure: does the header section of content have a "Delivered-To: rcpt" (any case)? Then it loops. */
bool virtual_delivered_to(const char *content, size_t len, const char *rcpt);

/* Pure: base "/" value (as Postfix, the base prefixes every value, absolute or not; without a base the
 * value must be absolute), NULL for an empty value or one with a ".." component. malloc'd. */
char *virtual_mailbox_path(const char *base, const char *value);
