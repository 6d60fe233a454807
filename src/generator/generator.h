/* generator.h: the pure core of postfix-generator: one instance's main.cf/master.cf -> unit drop-ins. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "inet_listen.h"
#include "mastercf.h"

/* Limits: an instance beyond them is skipped with a message, never half-written. */
#define GEN_INSTANCES_MAX     1000            /* entries of multi_instance_directories */
#define GEN_LISTENERS_MAX     INET_LISTEN_MAX /* ListenStream= lines of one instance */
#define GEN_INET_SERVICES_MAX 64              /* inet services (socket units) of one instance */
#define GEN_NAME_MAX          200             /* bytes of an instance name ("postfix-dept1") */

/* One file to write under the generator's output directory. */
struct gen_file {
        char *path;    /* relative: "postfix@dept1.service.d/50-postd.conf" */
        char *text;    /* file contents, or NULL for a symlink */
        char *symlink; /* symlink target, or NULL for a regular file */
};

struct gen_output {
        struct gen_file *files;
        size_t n_files;
        struct strv messages; /* one line each, for kmsg/stderr: skipped instances, disabled listeners */
};

struct gen_instance {
        struct config *config;         /* the instance's main.cf */
        const struct mastercf *master; /* its master.cf */
        bool is_default;               /* the instance of the default config directory: unit postfix@- */
        bool have_ipv6;                /* the host can create IPv6 sockets (inet_protocols = all) */
        const char *template_path;     /* where postfix@.service is installed (target of the wants) */
        /* Skip the instance when a listener address is on no interface (inet_listen_check_local).
         * Off at boot: generators run before the network is configured. */
        bool check_local;
};

/*
 * Append the files of one instance to out: the service drop-in (config directory, log identifier,
 * writable paths, the socket dependencies), one socket unit or drop-in per inet service with its
 * ListenStream= lines and FileDescriptorName=, and the postfix.target wants when the instance is
 * enabled. On a problem nothing of the instance is added, a message is, and the return is -EINVAL.
 * Pure: no I/O, except getservbyname() for port names not built in (a local file lookup) and, with
 * check_local, a bind to port 0 of each listener address (nothing is sent).
 */
int gen_instance(const struct gen_instance *in, struct gen_output *out);

/*
 * The unit instance of an instance: "-" for the default, "dept1" for multi_instance_name postfix-dept1
 * (else for a configuration directory ".../postfix-dept1"). NULL when there is no usable name (the name
 * must start with "postfix-" and consist of letters, digits, "-", "_" and ".").
 */
char *gen_unit_instance(struct config *c, bool is_default);

/* Whether postfix.target starts the instance (multi_instance_enable; the default instance also when
 * multi-instance management was never initialised). */
bool gen_instance_wanted(struct config *c, bool is_default);

void gen_output_done(struct gen_output *out);
/* The file with that relative path, or NULL (for tests). */
const struct gen_file *gen_output_find(const struct gen_output *out, const char *path);
