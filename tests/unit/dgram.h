/* dgram.h: a real AF_UNIX datagram receiver for the tests of systemd's daemon protocols. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* A datagram socket bound to path, or to "@name" in the abstract namespace: its fd, or -errno. */
int dgram_bind(const char *address);

/*
 * Receive one datagram, waiting at most timeout_ms: its length (the bytes in buf), or -ETIMEDOUT /
 * -EMSGSIZE (larger than size) / -errno. *passed is the descriptor it carried (SCM_RIGHTS), else -1.
 */
ssize_t dgram_recv(int fd, void *buf, size_t size, int *passed, int timeout_ms);
