/* listen_fds.h: the sockets systemd passes to a socket-activated service (sd_listen_fds(3)), without
 * libsystemd. */
#pragma once

/* The first passed descriptor; the others follow without a gap. */
#define LISTEN_FDS_START 3

/*
 * Take the descriptors passed by socket activation, as sd_listen_fds_with_names(true, names): when
 * $LISTEN_PID is this process, $LISTEN_FDS = n descriptors LISTEN_FDS_START.. LISTEN_FDS_START+n-1 are
 * ours; each gets FD_CLOEXEC, so that children do not inherit them. *names (when names is not NULL)
 * becomes a NULL-terminated vector of n malloc'd strings from $LISTEN_FDNAMES (':'-separated, the
 * FileDescriptorName= of each), or "unknown" for each when that is unset or does not hold n names; the
 * caller frees each string and the vector. $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES are unset in
 * every case, so that children never take them for theirs.
 * Returns n; 0 when not socket-activated (*names = NULL); -EINVAL or -ERANGE for a malformed
 * variable, -EBADF when a descriptor announced is not open (*names untouched).
 */
int listen_fds_take(char ***names);
