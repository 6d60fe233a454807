/* queue_layout_table.c: the queue's directories with their modes and owners (the one table). Apart from
 * queue_layout.c so that a daemon that only opens the queue does not link what creates it (libselinux). */
#include "queue_layout.h"

#include "macro.h"

const struct layout_entry queue_layout[] = {
        {QUEUE_INCOMING, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_ACTIVE, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_DEFERRED, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_HOLD, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_CORRUPT, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_BOUNCE, 0700, OWN_MAIL, GRP_MAIL, false},
        {QUEUE_DEFER, 0700, OWN_MAIL, GRP_MAIL, false},
        {QUEUE_TRACE, 0700, OWN_MAIL, GRP_MAIL, false},
        /* Local submitters (setgid postdrop) drop files in but cannot list or read them. */
        {QUEUE_MAILDROP, 01730, OWN_MAIL, GRP_SETGID, true},
        /* Local submitters reach the public sockets (pickup, qmgr) only through the setgid group. */
        {QUEUE_PUBLIC, 0710, OWN_MAIL, GRP_SETGID, false},
        {QUEUE_PRIVATE, 0700, OWN_MAIL, GRP_MAIL, false},
        {QUEUE_PID, 0755, OWN_ROOT, GRP_ROOT, false},
        {QUEUE_SAVED, 0700, OWN_MAIL, GRP_MAIL, true},
        {QUEUE_FLUSH, 0700, OWN_MAIL, GRP_MAIL, false},
};

const size_t queue_layout_n = ELEMENTSOF(queue_layout);
