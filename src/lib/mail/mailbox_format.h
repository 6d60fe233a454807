/* mailbox_format.h: a delivered copy as a mailbox holds it (mbox or Maildir), written by local and virtual.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

/* Output is written in pieces of this size: a message is never copied whole. */
#define MAILBOX_WRITE_CHUNK (64u * 1024)

/* "From SENDER DATE\n", the line that starts an mbox message (MAILER-DAEMON for <>), DATE being when. */
void mailbox_from_line(struct buf *b, const char *sender, time_t when);

/* One delivered copy: what it is made of. The same fields always make the same bytes. */
struct mailbox_copy {
        const char *sender; /* "" for <> */
        const char *rcpt;   /* Delivered-To: value */
        const char *content;
        size_t len;
        time_t when; /* the From_ line's date */
        bool mbox;
};

/*
 * Write to fd: [From_ line when mbox] Return-Path: <sender>, Delivered-To: rcpt, then the message with
 * LF line ends (a last line without one gets it); in an mbox, lines starting "From " are quoted with '>'
 * and an empty line ends the message. 0 or a negative errno.
 */
int mailbox_write_copy(int fd, const struct mailbox_copy *c);

enum {
        MAILBOX_COPY_ABSENT = 0,  /* the bytes at the offset are something else */
        MAILBOX_COPY_PRESENT = 1, /* the whole copy is there */
        MAILBOX_COPY_TORN = 2,    /* the file ends inside the copy, every byte up to its end matching */
};
/* Whether the file open on fd holds, from offset at, exactly what mailbox_write_copy(c) writes: a
 * MAILBOX_COPY_* value, or a negative errno. Reads in pieces: memory does not grow with the message. */
int mailbox_copy_present(int fd, off_t at, const struct mailbox_copy *c);

/*
 * Deliver one Maildir copy (c->mbox false): write it to fd (open on tmp, in tmp/), fsync and close it,
 * rename it to dst (in new/) and fsync new/, so it is durable before anyone says "sent". On failure tmp
 * is removed and the negative errno returned; fd is closed either way.
 */
int maildir_deliver_file(int fd, const char *tmp, const char *dst, const struct mailbox_copy *c);
