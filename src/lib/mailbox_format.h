/* mailbox_format.h: a delivered copy as a mailbox holds it (mbox or Maildir), written by local and virtual.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Output is written in pieces of this size: a message is never copied whole. */
#define MAILBOX_WRITE_CHUNK (64u * 1024)

/* "From SENDER DATE\n", the line that starts a message in an mbox (MAILER-DAEMON for <>). */
void mailbox_from_line(struct buf *b, const char *sender);

/*
 * Write to fd: [From_ line when mbox] Return-Path: <sender>, Delivered-To: rcpt, then the message with
 * LF line ends (a last line without one gets it); in an mbox, lines starting "From " are quoted with '>'
 * and an empty line ends the message. 0 or a negative errno.
 */
int mailbox_write_copy(int fd, const char *sender, const char *rcpt, const char *content, size_t len,
                       bool mbox);

/*
 * Deliver one Maildir copy: write it to fd (open on tmp, in tmp/), fsync and close it, rename it to dst
 * (in new/) and fsync new/, so it is durable before anyone says "sent". On failure tmp is removed and
 * the negative errno returned; fd is closed either way.
 */
int maildir_deliver_file(int fd, const char *tmp, const char *dst, const char *sender, const char *rcpt,
                         const char *content, size_t len);
