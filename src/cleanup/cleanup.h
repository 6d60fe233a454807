/* cleanup.h: the cleanup daemon's shared state: settings, submission sessions and the group commit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include "event.h"

#include "checks.h"
#include "commit.h"
#include "milter.h"
#include "notice.h"

#include "instance.h"
#include "queue.h"
#include "resolve.h"
#include "rewrite.h"
#include "service.h"
#include "virtual.h"

/* Concurrent submissions one cleanup process serves on its event loop. */
#define CLEANUP_MAX_CONNECTIONS 200u
/* Largest message when message_size_limit is 0 (unlimited), below the queue format's 4 GiB bound. The
 * content streams to the queue file, so this bounds disk use, not memory. */
#define CLEANUP_CONTENT_HARD_MAX ((uint64_t)1 << 30)
/*
 * With body checks the envelope waits for the first body_checks_size_limit bytes of body (REDIRECT, BCC
 * and FILTER may still come); never for more than this, whatever that limit says, so memory stays bounded.
 */
#define CLEANUP_ENVELOPE_HOLD_MAX (1024u * 1024)

struct session;
struct commit;

struct cleanup {
        struct service *service;
        struct config *config;
        struct queue *queue;
        char *qmgr_socket;
        char *myhostname;
        char *myorigin;
        char *mydomain;
        struct rewrite_opts rewrite;
        /* Address maps after the myorigin/mydomain rewriting, each class as *_canonical_classes say. */
        struct table_param sender_canonical_maps, recipient_canonical_maps, canonical_maps;
        bool sender_canonical_envelope,
                recipient_canonical_envelope; /* sender/recipient_canonical_classes */
        bool canonical_envelope_sender, canonical_envelope_recipient; /* canonical_classes */
        size_t virtual_recursion_limit, virtual_expansion_limit, virtual_address_length_limit;
        /* Local domains and virtual_alias_maps (resolve.h); NULL until it could be opened. */
        struct resolve *resolve;
        bool address_maps;           /* any of the maps above is set: the resolver is needed */
        uint64_t message_size_limit; /* 0: unlimited (CLEANUP_CONTENT_HARD_MAX still applies) */
        size_t header_size_limit;
        long long hopcount_limit; /* Received: headers that make a message a mail loop; <= 0: no limit */
        size_t line_length_limit;
        uint64_t ipc_timeout_usec;
        struct checks_conf checks; /* header_checks, mime_header_checks, nested_header_checks, body_checks */
        struct milter_conf milters; /* smtpd_milters, non_smtpd_milters, milter_* */
        struct commit *commit;
        struct notice *notice; /* qmgr hears of committed messages through it */
};

/* session.c: one submission per connection (src/lib/proto/mail_proto.h, protocol 1). */
void session_start(struct cleanup *c, int fd);

/* main.c: the resolver, opened again when it failed before; NULL (the failure logged) when it cannot be. */
struct resolve *cleanup_resolver(struct cleanup *c);
