/* journal_send.h: entries to systemd-journald over its native protocol, without libsystemd. */
#pragma once

#include <stddef.h>
#include <sys/uio.h>

/*
 * Send one journal entry: each iov is one field "NAME=value", the value any bytes (a '\n' included).
 * One datagram to /run/systemd/journal/socket from a socket opened on first use and kept (close-on-exec;
 * a forked child keeps using it); an entry too large for a datagram goes as a sealed memfd instead.
 * 0, or a negative errno: -EINVAL for a field without '=' or with a '\n' in its name, -ENOENT or
 * -ECONNREFUSED when there is no journal (the caller writes to stderr instead).
 */
int journal_sendv(const struct iovec *iov, size_t n);

/* For tests: send to this socket path instead (NULL: the journal's again); the cached socket is closed. */
void journal_send_set_socket_path(const char *path);
